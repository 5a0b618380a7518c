"""``loginmetrics aggregate --metrics-port``: the aggregator's own figures and its loop's probes
are served from its process until the block ends."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request

import pytest

from loginmetrics.aggregator.metrics import aggregator_metrics
from loginmetrics.aggregator.monitoring import aggregator_monitoring

LOOPBACK = "127.0.0.1"


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://{LOOPBACK}:{port}{path}", timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


def test_a_served_aggregator_exports_its_last_metric_event_and_its_readiness() -> None:
    port = free_port()
    with aggregator_monitoring(port, "loginmetrics-aggregator", LOOPBACK) as probe:
        assert get(port, "/readyz")[0] == 503, "not ready before its loop has turned"
        aggregator_metrics().published(45, 2, 4.44, 43, 41, 1.95)
        probe.beat(True, "leading")
        status, body = get(port, "/metrics")
        assert status == 200
        assert "loginmetrics_metric_events_total" in body
        assert "loginmetrics_window_messages 45.0" in body
        assert "loginmetrics_aggregator_leader" in body
        assert 'loginmetrics_log_events_total{level="ERROR"}' in body
        assert get(port, "/readyz") == (200, "ready: loginmetrics-aggregator: leading\n")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((LOOPBACK, port), timeout=2).close()
