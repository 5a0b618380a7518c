"""The metrics and probe server cannot be exhausted: 500 idle (or half-sent) connections pin no
thread and /healthz still answers within a second; silent clients are dropped after the request
deadline; bad requests get a status, not a hang; a port in use is one clear error."""

from __future__ import annotations

import contextlib
import resource
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from click.testing import CliRunner
from prometheus_client import Counter

from loginmetrics.aggregator.metrics import AggregatorMetrics
from loginmetrics.cli.main import cli
from loginmetrics.runtime import http_server
from loginmetrics.runtime.errors import ConfigError
from loginmetrics.runtime.health import LocalHeartbeat
from loginmetrics.runtime.http_probe import Probes, ProbeServer, process_monitoring
from loginmetrics.runtime.metrics import process_registry
from loginmetrics.runtime.process_metrics import process_collectors
from loginmetrics.runtime.signals import EXIT_FATAL

IDLE_CONNECTIONS = 500
LOOPBACK = "127.0.0.1"


@pytest.fixture
def served() -> Iterator[ProbeServer]:
    heartbeat = LocalHeartbeat("aggregator")
    heartbeat.beat(True, "leading")
    figures = AggregatorMetrics()
    figures.published(45, 2, 4.44, 43, 41, 1.95)
    registry = process_registry(*figures.collectors(), *process_collectors())
    probes = Probes(heartbeat, ["aggregator"], started_at=time.monotonic())
    server = ProbeServer(0, registry, probes, address=LOOPBACK)
    server.start()
    yield server
    server.close()


@pytest.fixture
def descriptors_for_idle_connections() -> Iterator[None]:
    """Room for the idle clients' sockets and the server's side of them (a stock soft limit of
    1024 is enough; a lower one is raised to the hard limit for this test only)."""
    needed = 2 * IDLE_CONNECTIONS + 256
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            pytest.fail(f"ulimit -n: {needed} descriptors needed, the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def get(port: int, path: str, timeout: float = 5.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://{LOOPBACK}:{port}{path}", timeout=timeout) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def exchange(port: int, request: bytes) -> bytes:
    with socket.create_connection((LOOPBACK, port), timeout=5) as client:
        client.sendall(request)
        chunks = []
        while chunk := client.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


@contextlib.contextmanager
def idle_connections(port: int, count: int) -> Iterator[list[socket.socket]]:
    """``count`` connections that never finish a request: half say nothing, half send the
    start of a request line and stop (a slow client). Every socket is closed at the end."""
    clients: list[socket.socket] = []
    try:
        for number in range(count):
            client = socket.create_connection((LOOPBACK, port), timeout=5)
            clients.append(client)
            if number % 2:
                client.sendall(b"GET /metr")
        yield clients
    finally:
        for client in clients:
            client.close()


def test_500_idle_connections_pin_no_thread_and_healthz_answers_within_a_second(
    served: ProbeServer, descriptors_for_idle_connections: None
) -> None:
    threads_before = threading.active_count()
    with idle_connections(served.port, IDLE_CONNECTIONS) as clients:
        time.sleep(0.5)  # let the server take them all in
        started = time.monotonic()
        status, body = get(served.port, "/healthz", timeout=1.0)
        took = time.monotonic() - started
        assert (status, body) == (200, "alive: 1 loop(s) turning\n")
        assert took < 1.0, f"/healthz took {took:.2f} s behind {len(clients)} idle connections"
        # The answer threads, started on first use, and nothing per connection.
        assert threading.active_count() <= threads_before + http_server.ANSWER_THREADS
        status, body = get(served.port, "/metrics", timeout=1.0)
        assert status == 200
        assert "loginmetrics_window_error_rate 4.44" in body
        assert 'loginmetrics_build_info{version="' in body
        assert "process_cpu_seconds_total" in body


def test_a_silent_client_is_dropped_after_the_request_deadline(
    served: ProbeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(http_server, "REQUEST_HEAD_SECONDS", 0.2)
    with socket.create_connection((LOOPBACK, served.port), timeout=5) as client:
        client.sendall(b"GET /healthz HTTP/1.1\r\n")  # and never the blank line
        started = time.monotonic()
        try:
            closed = client.recv(1) == b""
        except ConnectionResetError:
            closed = True
        assert closed
        assert time.monotonic() - started < 3.0


def test_bad_requests_get_a_status_not_a_hang(served: ProbeServer) -> None:
    assert exchange(served.port, b"nonsense\r\n\r\n").startswith(b"HTTP/1.0 400 ")
    post = b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
    assert exchange(served.port, post).startswith(b"HTTP/1.0 405 ")
    head = exchange(served.port, b"HEAD /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200 ")
    assert head.endswith(b"\r\n\r\n"), "HEAD: no body"
    assert get(served.port, "/healthz?verbose=1") == (200, "alive: 1 loop(s) turning\n")
    assert get(served.port, "/nothing")[0] == 404
    oversized = b"GET /healthz HTTP/1.1\r\nX-Filler: " + b"a" * 20_000 + b"\r\n\r\n"
    try:
        answer = exchange(served.port, oversized)
    except ConnectionResetError:
        answer = b""
    assert answer == b"", "a head over the limit is dropped unanswered"
    assert get(served.port, "/healthz")[0] == 200, "and the server goes on"


def test_the_query_string_reaches_the_answer_and_a_repeated_parameter_is_a_400(
    served: ProbeServer,
) -> None:
    request = http_server.parse_head(
        b"GET /api/v1/window?last=15m&to=2025-01-21T00%3A02%3A06&empty= HTTP/1.1\r\nHost: x"
    )
    assert request.path == "/api/v1/window"
    assert request.query == {"last": "15m", "to": "2025-01-21T00:02:06", "empty": ""}
    answer = exchange(served.port, b"GET /healthz?a=1&a=2 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer.startswith(b"HTTP/1.0 400 ")
    assert answer.endswith(b'{"error": "parameter \'a\' given more than once"}\n')


def test_the_connection_cap_evicts_the_oldest_idle_client_not_the_newcomer(
    served: ProbeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(http_server, "MAX_CONNECTIONS", 4)
    with idle_connections(served.port, 10) as clients:
        time.sleep(0.3)
        assert get(served.port, "/healthz", timeout=1.0)[0] == 200
        evicted = 0
        for client in clients[:6]:
            client.settimeout(1.0)
            try:
                evicted += client.recv(1) == b""
            except ConnectionResetError:
                evicted += 1
        assert evicted == 6


def test_a_port_in_use_is_one_clear_error(served: ProbeServer) -> None:
    heartbeat = LocalHeartbeat("other")
    probes = Probes(heartbeat, ["other"])
    second = ProbeServer(served.port, process_registry(), probes, address=LOOPBACK)
    with pytest.raises(ConfigError, match=f"cannot serve metrics on 127.0.0.1 port {served.port}"):
        second.start()
    second.close()


def test_every_interface_means_ipv4_and_ipv6_loopback() -> None:
    heartbeat = LocalHeartbeat("aggregator")
    heartbeat.beat(True, "leading")
    server = ProbeServer(0, process_registry(), Probes(heartbeat, ["aggregator"]))
    server.start()
    try:
        assert get(server.port, "/healthz")[0] == 200
        if not _has_ipv6_loopback():
            return  # a host without IPv6: every interface is every IPv4 one
        with socket.create_connection(("::1", server.port), timeout=5) as client:
            client.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
            assert client.recv(64).startswith(b"HTTP/1.0 200 ")
    finally:
        server.close()


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


def test_metrics_address_binds_that_interface_only_and_serves_the_process_figures() -> None:
    port = _free_port()
    figures = Counter("loginmetrics_served_things", "What the loop did", registry=None)
    figures.inc(3)
    with process_monitoring(port, "the-loop", [figures], LOOPBACK) as probe:
        probe.beat(True, "working")
        status, body = get(port, "/metrics")
        assert status == 200
        assert "loginmetrics_served_things_total 3.0" in body
        assert 'loginmetrics_log_events_total{level="ERROR"}' in body, "every process's figures"
        assert 'loginmetrics_build_info{version="' in body
        assert "process_resident_memory_bytes" in body
        assert get(port, "/readyz") == (200, "ready: the-loop: working\n")
        if _has_ipv6_loopback():
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(("::1", port), timeout=2).close()


def test_a_metrics_port_in_use_stops_the_process_with_one_error(
    served: ProbeServer, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        pytest.raises(SystemExit) as stopped,
        process_monitoring(served.port, "the-loop", [], LOOPBACK),
    ):
        pass
    assert stopped.value.code == EXIT_FATAL
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1
    assert f"cannot serve metrics on 127.0.0.1 port {served.port}" in errors[0]


@pytest.mark.parametrize("command", ["worker", "aggregate", "run"])
def test_every_serving_command_takes_metrics_address(command: str) -> None:
    result = CliRunner().invoke(cli, [command, "--help"], terminal_width=200)
    assert result.exit_code == 0
    assert "--metrics-address" in result.output
    assert "LOGINMETRICS_METRICS_ADDRESS" in result.output
    assert "every interface, IPv4 and IPv6" in result.output
