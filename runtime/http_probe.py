"""The --metrics-port HTTP server: ``/metrics`` (Prometheus text), ``/healthz`` (alive: every
loop turns) and ``/readyz`` (ready: assigned and writing, or leading / standing by).

A pool (``worker``, ``run``) serves it from the supervisor, over a private directory where its
children keep their figures and heartbeats; ``aggregate`` serves it from its own process."""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from loginmetrics.runtime.health import (
    HeartbeatDir,
    HeartbeatFile,
    Heartbeats,
    LocalHeartbeat,
    LoopProbe,
    NoProbe,
    Verdict,
    liveness,
    readiness,
)
from loginmetrics.runtime.metrics import (
    MULTIPROCESS_DIR_ENV,
    aggregator_metrics,
    common_metrics,
    pool_registry,
    process_exited,
    process_registry,
    use_multiprocess_dir,
)

logger = logging.getLogger(__name__)

# Every interface: the port is reached from outside the container or pod.
BIND_ADDRESS = "0.0.0.0"  # noqa: S104
METRICS_PATH = "/metrics"
LIVENESS_PATH = "/healthz"
READINESS_PATH = "/readyz"


@dataclass(frozen=True, slots=True)
class Probes:
    """The probes' logic over some heartbeats, with the clock injected."""

    heartbeats: Heartbeats
    expected: Sequence[str]
    clock: Callable[[], float] = time.monotonic
    started_at: float = 0.0

    def liveness(self) -> Verdict:
        return liveness(self.heartbeats.read(), self.expected, self.clock(), self.started_at)

    def readiness(self) -> Verdict:
        return readiness(self.heartbeats.read(), self.expected, self.clock())


class ProbeServer:
    """Serves a registry and two probes on ``port`` from a daemon thread."""

    def __init__(self, port: int, registry: CollectorRegistry, probes: Probes) -> None:
        handler = _handler(registry, probes)
        self._server = ThreadingHTTPServer((BIND_ADDRESS, port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="metrics-http", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()
        logger.info(
            "serving %s, %s and %s on port %d",
            METRICS_PATH,
            LIVENESS_PATH,
            READINESS_PATH,
            self.port,
        )

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _handler(registry: CollectorRegistry, probes: Probes) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == METRICS_PATH:
                encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
                self._send(HTTPStatus.OK, content_type, encoder(registry))
            elif path in (LIVENESS_PATH, READINESS_PATH):
                verdict = probes.liveness() if path == LIVENESS_PATH else probes.readiness()
                status = HTTPStatus.OK if verdict.ok else HTTPStatus.SERVICE_UNAVAILABLE
                self._send(status, "text/plain; charset=utf-8", f"{verdict.reason}\n".encode())
            else:
                self._send(HTTPStatus.NOT_FOUND, "text/plain; charset=utf-8", b"not found\n")

        def _send(self, status: HTTPStatus, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # a scrape every few seconds is not news

    return Handler


# -- a pool: the supervisor serves, its children report through a private directory ------------


class PoolMonitor:
    """The supervisor's side: forget a child that exited."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def child_exited(self, pid: int) -> None:
        process_exited(pid, str(self.directory))


@contextmanager
def pool_monitoring(port: int | None, children: Sequence[str]) -> Iterator[PoolMonitor | None]:
    """With a port: a private directory for the children's figures and heartbeats (given to
    them through the environment they are spawned with), served on ``port`` until the block
    ends, then removed. Without one: nothing."""
    if port is None:
        yield None
        return
    directory = Path(tempfile.mkdtemp(prefix="loginmetrics-pool-"))
    try:
        use_multiprocess_dir(str(directory))
        probes = Probes(HeartbeatDir(directory), list(children), started_at=time.monotonic())
        server = ProbeServer(port, pool_registry(str(directory)), probes)
        server.start()
        try:
            yield PoolMonitor(directory)
        finally:
            server.close()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def child_probe() -> LoopProbe:
    """The heartbeat of a pool child (named after its process), or none when not served."""
    directory = os.environ.get(MULTIPROCESS_DIR_ENV)
    if not directory:
        return NoProbe()
    return HeartbeatFile(Path(directory), multiprocessing.current_process().name)


# -- one process: ``loginmetrics aggregate`` -------------------------------------------------------


@contextmanager
def aggregator_monitoring(port: int | None, name: str) -> Iterator[LoopProbe]:
    """With a port: this aggregator's figures and probes served until the block ends; the
    loop beats on the probe it is given. Without one: a probe that does nothing."""
    if port is None:
        yield NoProbe()
        return
    heartbeat = LocalHeartbeat(name)
    registry = process_registry(*common_metrics().collectors(), *aggregator_metrics().collectors())
    server = ProbeServer(port, registry, Probes(heartbeat, [name], started_at=time.monotonic()))
    server.start()
    try:
        yield heartbeat
    finally:
        server.close()
