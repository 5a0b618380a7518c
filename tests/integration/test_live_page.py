"""The live page in headless Chromium against a running pipeline (`loginmetrics run --http-port`
on the shared stack): the figures it shows are those of the last metric event of its window, the
status strip names the leader, and a screenshot is taken (to docs/img/live-page.png when
LOGINMETRICS_UPDATE_SCREENSHOT is set, so a test run leaves the tree as it was)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import redis

from loginmetrics.window import WindowLayout
from tests.support import login_stream, loginmetrics, pipeline_env, produce, topic_reader

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "docs" / "img" / "live-page.png"
WINDOW_SECONDS = 60
EMIT_INTERVAL = 2
# Virtual time the page may run in Chromium: its first poll, and a few more (every
# EMIT_INTERVAL s of virtual time); a fetch in flight holds virtual time still.
VIRTUAL_MILLISECONDS = 5000
CHROMIUM_SECONDS = 20
FIGURES = ("active_users", "unique_ips", "processing_rate", "error_rate", "window_size")


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip(
            "chromium is not installed: `bash stack/prerequisites.sh test` installs Debian's "
            "chromium package (make test runs it)"
        )
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def headless(browser: str, profile: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [
            browser,
            "--headless",
            "--disable-gpu",
            "--no-sandbox",  # tests run as root in CI containers
            "--no-first-run",
            f"--user-data-dir={profile}",
            f"--virtual-time-budget={VIRTUAL_MILLISECONDS}",
            *args,
        ],
        capture_output=True,
        timeout=CHROMIUM_SECONDS,
        check=True,
    )


class PageFigures(HTMLParser):
    """What the rendered page shows: ``data-metric`` and ``data-status`` texts, each
    distribution's bars, and the body's ``data-*`` marks."""

    def __init__(self) -> None:
        super().__init__()
        self.texts: dict[str, str] = {}
        self.bars: dict[str, dict[str, int]] = {}
        self.body: dict[str, str] = {}
        self._reading: str | None = None
        self._distribution: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {name: value or "" for name, value in attrs}
        if tag == "body":
            self.body = found
        for mark in ("data-metric", "data-status"):
            if mark in found:
                self._reading = found[mark]
                self.texts[self._reading] = ""
        if "data-distribution" in found:
            self._distribution = found["data-distribution"]
            self.bars[self._distribution] = {}
        if "data-value" in found and self._distribution is not None:
            self.bars[self._distribution][found["data-value"]] = int(found["data-count"])

    def handle_data(self, data: str) -> None:
        if self._reading is not None:
            self.texts[self._reading] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "b":
            self._reading = None


def history_holds(port: int, valid: int) -> bool:
    """The API's history has an event of the page's window that counts every valid message."""
    url = f"http://127.0.0.1:{port}/api/v1/events?window={WINDOW_SECONDS}"
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            events = json.loads(answer.read())["events"]
    except OSError:
        return False  # not serving yet
    return bool(events) and events[-1]["window_size"] == valid


def wait(until: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not until():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.25)


def published(bootstrap: str, topic: str, window_end: str) -> dict[str, Any]:
    """The metric event for ``window_end`` as the aggregator produced it to Kafka."""
    consumer = topic_reader(bootstrap, topic)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            for message in consumer.consume(100, 0.5):
                assert message.error() is None, message.error()
                event: dict[str, Any] = json.loads(message.value() or b"{}")
                if event["window_end"] == window_end:
                    return event
    finally:
        consumer.close()
    raise AssertionError(f"no metric event for the window ending at {window_end} on {topic}")


@pytest.mark.timeout(75)
def test_the_page_shows_the_last_metric_event_of_its_window(
    kafka_bootstrap: str,
    redis_url: str,
    redis_client: redis.Redis,
    redis_prefix: str,
    new_topic: Callable[..., str],
    unique_group_id: str,
    tmp_path: Path,
) -> None:
    browser = chromium()
    port = free_port()
    logins, dlq, metrics = new_topic(2), new_topic(1), new_topic(1)
    stream = login_stream(400, users=150)
    env = pipeline_env(
        kafka_bootstrap,
        redis_url,
        redis_prefix,
        input_topic=logins,
        dlq_topic=dlq,
        metrics_topic=metrics,
        group_id=unique_group_id,
        window=WINDOW_SECONDS,
        emit_interval=EMIT_INTERVAL,
        http_port=port,
        http_address="127.0.0.1",
    )
    url = f"http://127.0.0.1:{port}/"
    with loginmetrics("run", "--processes", "1", env=env, log=tmp_path / "run.log"):
        produce(kafka_bootstrap, logins, stream.messages)
        wait(lambda: history_holds(port, stream.truth.valid), 40, "every login in an event")
        dom = headless(browser, tmp_path / "profile", "--dump-dom", url)
        page = tmp_path / "page.html"
        page.write_bytes(dom.stdout)
        shot = tmp_path / "live-page.png"
        size = ["--window-size=1280,1100", "--hide-scrollbars"]
        headless(browser, tmp_path / "profile", f"--screenshot={shot}", *size, url)
        leader = redis_client.get(WindowLayout(prefix=redis_prefix).aggregator_lease_key)

    shown = PageFigures()
    shown.feed(dom.stdout.decode())
    assert shown.body.get("data-loaded") == "true", f"the page drew no event: {page}"
    assert shown.body.get("data-window-seconds") == str(WINDOW_SECONDS)
    window_end = shown.texts["window_end"].removesuffix("Z")
    event = published(kafka_bootstrap, metrics, f"{window_end}.000000")
    for name in FIGURES:
        assert float(shown.texts[name]) == event[name], name
    assert event["window_size"] == stream.truth.valid
    for name in ("device_distribution", "version_distribution", "location_distribution"):
        bars = shown.bars[name]
        assert sum(bars.values()) == event["window_size"], f"{name}: the bars sum to the window"
        for value, count in bars.items():
            if value != "__other__":
                assert event[name][value] == count, f"{name}: {value}"
    assert isinstance(leader, bytes)
    assert shown.texts["leader"] == leader.decode()
    assert shown.texts["lag"].startswith("0 messages"), "every login was applied"

    assert shot.stat().st_size > 10_000, "a screenshot of a drawn page"
    if os.environ.get("LOGINMETRICS_UPDATE_SCREENSHOT"):  # the docs' picture, on purpose only
        SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(shot, SCREENSHOT)
