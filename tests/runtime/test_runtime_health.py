"""The probes' logic with a clock the test moves: alive while every loop turns, ready while every
loop says so; heartbeats written at most once a second unless their state changes; the HTTP
endpoints and `loginmetrics health` answer with the verdict."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from loginmetrics.aggregator.metrics import AggregatorMetrics
from loginmetrics.cli.main import cli
from loginmetrics.runtime.health import (
    STALE_AFTER_SECONDS,
    Beat,
    HeartbeatDir,
    HeartbeatFile,
    LocalHeartbeat,
    liveness,
    readiness,
)
from loginmetrics.runtime.http_probe import Probes, ProbeServer
from loginmetrics.runtime.metrics import process_registry


class Clock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def beat(name: str, at: float, ready: bool = True, detail: str = "consuming") -> Beat:
    return Beat(name, 1, at, ready, detail)


NAMES = ["worker-0", "worker-1"]


def test_alive_while_every_loop_turns_within_the_stale_limit() -> None:
    beats = {"worker-0": beat("worker-0", 100.0), "worker-1": beat("worker-1", 130.0)}
    assert liveness(beats, NAMES, now=100.0 + STALE_AFTER_SECONDS, since=0.0).ok
    verdict = liveness(beats, NAMES, now=100.5 + STALE_AFTER_SECONDS, since=0.0)
    assert not verdict.ok
    assert verdict.reason == "stuck: worker-0 has not turned for 60 s"


def test_a_loop_that_never_reported_counts_from_the_probe_start() -> None:
    beats = {"worker-0": beat("worker-0", 100.0)}
    assert liveness(beats, NAMES, now=100.0, since=90.0).ok  # worker-1 is still starting
    verdict = liveness(beats, NAMES, now=151.0, since=90.0)
    assert not verdict.ok
    assert "worker-1 has not reported for 61 s" in verdict.reason


def test_ready_only_when_every_loop_reports_ready() -> None:
    assert not readiness({}, NAMES, now=100.0).ok  # nobody reported yet
    one = {"worker-0": beat("worker-0", 100.0)}
    assert readiness(one, NAMES, now=100.0).reason == (
        "not ready: worker-0: consuming; worker-1: starting"
    )
    both = {**one, "worker-1": beat("worker-1", 99.0)}
    assert readiness(both, NAMES, now=100.0).ok
    paused = {**one, "worker-1": beat("worker-1", 99.0, ready=False, detail="paused")}
    assert readiness(paused, NAMES, now=100.0).reason == (
        "not ready: worker-0: consuming; worker-1: paused"
    )
    stale = readiness(both, NAMES, now=99.0 + STALE_AFTER_SECONDS + 1)
    assert not stale.ok
    assert "worker-1: no report for 61 s" in stale.reason


def test_heartbeat_files_are_throttled_but_a_change_is_written_at_once(tmp_path: Path) -> None:
    clock = Clock()
    heartbeat = HeartbeatFile(tmp_path, "worker-0", clock=clock)
    heartbeats = HeartbeatDir(tmp_path)
    heartbeat.beat(False, "starting")
    assert heartbeats.read()["worker-0"].detail == "starting"
    clock.now += 0.1
    heartbeat.beat(True, "consuming")  # changed: written now
    written = heartbeats.read()["worker-0"]
    assert written.at == pytest.approx(100.1)
    assert (written.ready, written.detail) == (True, "consuming")
    clock.now += 0.5
    heartbeat.beat(True, "consuming")  # same state within a second: not written
    assert heartbeats.read()["worker-0"].at == pytest.approx(100.1)
    clock.now += 0.6
    heartbeat.beat(True, "consuming")
    assert heartbeats.read()["worker-0"].at == pytest.approx(101.2)
    assert [p.name for p in tmp_path.iterdir()] == ["heartbeat-worker-0.json"]  # no leftovers


def test_a_torn_or_foreign_file_is_skipped(tmp_path: Path) -> None:
    (tmp_path / "heartbeat-broken.json").write_text('{"name": "broken", "pi')
    (tmp_path / "heartbeat-odd.json").write_text(json.dumps({"name": "odd"}))
    HeartbeatFile(tmp_path, "worker-1", clock=Clock()).beat(True, "consuming")
    assert list(HeartbeatDir(tmp_path).read()) == ["worker-1"]


@pytest.fixture
def served() -> Iterator[tuple[ProbeServer, LocalHeartbeat, Clock]]:
    clock = Clock()
    heartbeat = LocalHeartbeat("aggregator", clock=clock)
    probes = Probes(heartbeat, ["aggregator"], clock=clock, started_at=clock.now)
    figures = AggregatorMetrics()
    figures.published(45, 2, 4.44, 43, 41, 1.95)
    server = ProbeServer(0, process_registry(*figures.collectors()), probes)
    server.start()
    yield server, heartbeat, clock
    server.close()


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_endpoints_answer_the_verdicts(served: tuple[ProbeServer, LocalHeartbeat, Clock]) -> None:
    server, heartbeat, clock = served
    assert get(server.port, "/readyz") == (503, "not ready: aggregator: starting\n")
    heartbeat.beat(True, "standing by")
    assert get(server.port, "/healthz") == (200, "alive: 1 loop(s) turning\n")
    assert get(server.port, "/readyz") == (200, "ready: aggregator: standing by\n")
    clock.now += STALE_AFTER_SECONDS + 5
    assert get(server.port, "/healthz") == (503, "stuck: aggregator has not turned for 65 s\n")
    assert get(server.port, "/nothing")[0] == 404
    status, body = get(server.port, "/metrics")
    assert status == 200
    assert "\nloginmetrics_window_error_rate 4.44\n" in body
    assert "\nloginmetrics_metric_events_total 1.0\n" in body


def test_health_command_exits_with_the_verdict(
    served: tuple[ProbeServer, LocalHeartbeat, Clock],
) -> None:
    server, heartbeat, clock = served
    heartbeat.beat(False, "Redis or Kafka unavailable, retrying")
    runner = CliRunner()
    alive = runner.invoke(cli, ["health", "--port", str(server.port)])
    assert (alive.exit_code, alive.output) == (0, "healthy: alive: 1 loop(s) turning\n")
    not_ready = runner.invoke(cli, ["health", "--port", str(server.port), "--ready"])
    assert not_ready.exit_code == 1
    assert not_ready.output == (
        "unhealthy: /readyz: not ready: aggregator: Redis or Kafka unavailable, retrying\n"
    )
    clock.now += STALE_AFTER_SECONDS + 1
    stuck = runner.invoke(cli, ["health"], env={"LOGINMETRICS_METRICS_PORT": str(server.port)})
    assert stuck.exit_code == 1
    assert stuck.output.startswith("unhealthy: /healthz: stuck: aggregator")


def test_health_without_a_port_has_nothing_to_check() -> None:
    result = CliRunner().invoke(cli, ["health"], env={"LOGINMETRICS_METRICS_PORT": None})
    assert result.exit_code == 0
    assert "no metrics port configured" in result.output


def test_health_reports_a_closed_port(served: tuple[ProbeServer, LocalHeartbeat, Clock]) -> None:
    server, _heartbeat, _clock = served
    port = server.port
    server.close()
    result = CliRunner().invoke(cli, ["health", "--port", str(port)])
    assert result.exit_code == 1
    assert result.output.startswith(f"unhealthy: /healthz: no answer on port {port}")
