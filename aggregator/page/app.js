// The live page: polls the API every emit interval and draws the last hour as plain SVG.
// No chart library: four line charts and three bar lists are ~150 lines of our own, with no
// licence to vendor, nothing to download and nothing to build.
"use strict";

const CHARTS = ["active_users", "unique_ips", "processing_rate", "error_rate"];
const FIGURES = [...CHARTS, "window_size", "total_messages", "total_errors"];
const MOST_BARS = 12; // the rest of a distribution is summed under __other__, as events do
const OTHER = "__other__";
const SVG = "http://www.w3.org/2000/svg";

let config = null;
let timer = null;

function durationText(seconds) {
  for (const [unit, size] of [["d", 86400], ["h", 3600], ["m", 60]]) {
    if (seconds % size === 0) return `${seconds / size}${unit}`;
  }
  return `${seconds}s`;
}

async function getJson(path) {
  const answer = await fetch(path, { cache: "no-store" });
  const body = await answer.json();
  if (!answer.ok) throw new Error(`${path}: ${body.error || answer.status}`);
  return body;
}

function selectedWindow() {
  return Number(document.getElementById("window").value);
}

function setText(selector, text) {
  for (const node of document.querySelectorAll(selector)) node.textContent = text;
}

function showFigures(event) {
  for (const name of FIGURES) setText(`[data-metric="${name}"]`, String(event[name]));
  setText('[data-metric="window_end"]', `${event.window_end.slice(0, 19)}Z`);
}

function element(name, attributes, parent) {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  parent.appendChild(node);
  return node;
}

function drawChart(svg, points, hourEnd) {
  svg.replaceChildren();
  const width = svg.clientWidth || 320;
  const height = svg.clientHeight || 140;
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  const left = 40, bottom = height - 16, top = 8, right = width - 8;
  const start = hourEnd - 3600 * 1000;
  const highest = Math.max(1, ...points.map((p) => p.y));
  const x = (t) => left + ((t - start) / (hourEnd - start)) * (right - left);
  const y = (v) => bottom - (v / highest) * (bottom - top);
  element("line", { class: "axis", x1: left, y1: bottom, x2: right, y2: bottom }, svg);
  element("line", { class: "axis", x1: left, y1: top, x2: left, y2: bottom }, svg);
  element("text", { x: 2, y: top + 8 }, svg).textContent = String(highest);
  element("text", { x: 2, y: bottom }, svg).textContent = "0";
  element("text", { x: left, y: height - 2 }, svg).textContent = "-1h";
  element("text", { x: right - 20, y: height - 2 }, svg).textContent = "now";
  const shown = points.filter((p) => p.t >= start);
  if (shown.length > 0) {
    const path = shown.map((p) => `${x(p.t).toFixed(1)},${y(p.y).toFixed(1)}`).join(" ");
    element("polyline", { class: "line", points: path }, svg);
  }
  svg.dataset.points = String(shown.length);
}

function showCharts(events) {
  const hourEnd = Date.now();
  for (const name of CHARTS) {
    const points = events.map((e) => ({ t: Date.parse(`${e.window_end}Z`), y: e[name] }));
    drawChart(document.querySelector(`[data-chart="${name}"]`), points, hourEnd);
  }
}

function showDistribution(box, distribution) {
  // Events list the largest first and __other__ last; the page shows fewer bars still.
  const entries = Object.entries(distribution).filter(([name]) => name !== OTHER);
  const listed = entries.slice(0, MOST_BARS);
  const rest = entries.slice(MOST_BARS).reduce((sum, [, n]) => sum + n, distribution[OTHER] || 0);
  if (rest > 0) listed.push([OTHER, rest]);
  const highest = Math.max(1, ...listed.map(([, n]) => n));
  box.replaceChildren();
  for (const [name, count] of listed) {
    const row = document.createElement("div");
    row.className = "bar";
    row.dataset.value = name;
    row.dataset.count = String(count);
    const label = document.createElement("span");
    label.textContent = name;
    label.title = name;
    const bar = document.createElement("i");
    bar.style.width = `${(100 * count) / highest}%`;
    const figure = document.createElement("span");
    figure.textContent = String(count);
    row.append(label, bar, figure);
    box.appendChild(row);
  }
}

function showStatus(status) {
  const leader = status.aggregator.leader;
  setText('[data-status="leader"]', leader || "none");
  const age = status.aggregator.last_window_age_seconds;
  setText('[data-status="last_window_age"]', age === null ? "none yet" : `${age.toFixed(1)} s ago`);
  const lag = status.lag;
  const seconds = lag.seconds === null ? "" : ` (${lag.seconds.toFixed(1)} s)`;
  setText('[data-status="lag"]', `${lag.messages} messages${seconds}`);
}

function showProblem(problems) {
  const box = document.getElementById("problem");
  box.hidden = problems.length === 0;
  box.textContent = problems.join("; ");
}

async function poll() {
  clearTimeout(timer);
  const problems = [];
  const seconds = selectedWindow();
  try {
    const answer = await getJson(`api/v1/events?window=${seconds}s`);
    if (selectedWindow() === seconds) {
      const events = answer.events;
      if (events.length > 0) {
        const last = events[events.length - 1];
        showFigures(last);
        for (const box of document.querySelectorAll("[data-distribution]")) {
          showDistribution(box, last[box.dataset.distribution]);
        }
        document.body.dataset.windowSeconds = String(seconds);
        document.body.dataset.loaded = "true";
      }
      showCharts(events);
    }
  } catch (error) {
    problems.push(error.message);
  }
  try {
    showStatus(await getJson("api/v1/status"));
  } catch (error) {
    setText('[data-status="lag"]', "unknown");
    problems.push(error.message);
  }
  showProblem(problems);
  timer = setTimeout(poll, config.emit_interval_seconds * 1000);
}

async function start() {
  try {
    config = await getJson("api/v1/config");
  } catch (error) {
    showProblem([error.message]);
    setTimeout(start, 5000);
    return;
  }
  const select = document.getElementById("window");
  const asked = Number(new URLSearchParams(location.search).get("window"));
  for (const seconds of config.window_lengths) {
    const option = document.createElement("option");
    option.value = String(seconds);
    option.textContent = durationText(seconds);
    option.selected = seconds === asked;
    select.appendChild(option);
  }
  select.addEventListener("change", poll);
  poll();
}

start();
