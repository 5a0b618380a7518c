"""The --metrics-port HTTP server: ``/metrics`` (Prometheus text), ``/healthz`` (alive: every
loop turns) and ``/readyz`` (ready: every loop says it can do its work).

A pool serves it from the supervisor, over a private directory where its children keep their
figures and heartbeats; a single process serves it from a thread of its own."""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from loginmetrics.runtime.errors import ConfigError
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
from loginmetrics.runtime.http_server import (
    EVERY_INTERFACE,
    Answer,
    BoundedHttpServer,
    Reply,
    Request,
)
from loginmetrics.runtime.metrics import (
    MULTIPROCESS_DIR_ENV,
    common_metrics,
    pool_registry,
    process_exited,
    process_registry,
    use_multiprocess_dir,
)
from loginmetrics.runtime.process_metrics import pool_collectors, process_collectors
from loginmetrics.runtime.signals import EXIT_FATAL

logger = logging.getLogger(__name__)

# Every interface, IPv4 and IPv6 (as Prometheus exporters do): the port is reached from outside
# the container or pod. The one home of --metrics-address's default.
DEFAULT_METRICS_ADDRESS = EVERY_INTERFACE
METRICS_PATH = "/metrics"
LIVENESS_PATH = "/healthz"
READINESS_PATH = "/readyz"
TEXT = "text/plain; charset=utf-8"


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
    """Serves a registry and two probes on ``address``:``port`` from a daemon thread."""

    def __init__(
        self,
        port: int,
        registry: CollectorRegistry,
        probes: Probes,
        address: str = DEFAULT_METRICS_ADDRESS,
    ) -> None:
        self._address = address
        self._requested_port = port
        self._server = BoundedHttpServer(
            address, port, _answers(registry, probes), name="metrics-http"
        )

    @property
    def port(self) -> int:
        return self._server.port

    def start(self) -> None:
        """Serve; a ConfigError says why the address or port cannot be served."""
        try:
            self._server.start()
        except OSError as exc:
            where = self._address or "every interface"
            raise ConfigError(
                f"cannot serve metrics on {where} port {self._requested_port}: {exc}; "
                "check --metrics-address and --metrics-port"
            ) from exc
        logger.info(
            "serving %s, %s and %s on %s port %d",
            METRICS_PATH,
            LIVENESS_PATH,
            READINESS_PATH,
            self._address or "every interface,",
            self.port,
        )

    def close(self) -> None:
        self._server.close()


def _answers(registry: CollectorRegistry, probes: Probes) -> Answer:
    def answer(request: Request) -> Reply:
        if request.path == METRICS_PATH:
            encoder, content_type = choose_encoder(request.headers.get("accept", ""))
            return Reply(HTTPStatus.OK, content_type, encoder(registry))
        if request.path in (LIVENESS_PATH, READINESS_PATH):
            verdict = probes.liveness() if request.path == LIVENESS_PATH else probes.readiness()
            status = HTTPStatus.OK if verdict.ok else HTTPStatus.SERVICE_UNAVAILABLE
            return Reply(status, TEXT, f"{verdict.reason}\n".encode())
        return Reply(HTTPStatus.NOT_FOUND, TEXT, b"not found\n")

    return answer


def _start_or_exit(server: ProbeServer) -> None:
    """Start serving, or stop the process with one ERROR line: no restart frees a port in use
    or makes a wrong address right."""
    try:
        server.start()
    except ConfigError as exc:
        logger.error("%s", exc)
        sys.exit(EXIT_FATAL)


# -- a pool: the supervisor serves, its children report through a private directory ------------


class PoolMonitor:
    """The supervisor's side: forget a child that exited."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def child_exited(self, pid: int) -> None:
        process_exited(pid, str(self.directory))


@contextmanager
def pool_monitoring(
    port: int | None, children: Sequence[str], address: str = DEFAULT_METRICS_ADDRESS
) -> Iterator[PoolMonitor | None]:
    """With a port: a private directory for the children's figures and heartbeats (given to
    them through the environment they are spawned with), served on ``address``:``port`` with
    the pool's process figures until the block ends, then removed. Without one: nothing."""
    if port is None:
        yield None
        return
    directory = Path(tempfile.mkdtemp(prefix="loginmetrics-pool-"))
    try:
        use_multiprocess_dir(str(directory))
        probes = Probes(HeartbeatDir(directory), list(children), started_at=time.monotonic())
        registry = pool_registry(str(directory))
        for collector in pool_collectors():
            registry.register(collector)
        server = ProbeServer(port, registry, probes, address)
        _start_or_exit(server)
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


# -- one process that serves itself (not a pool) ---------------------------------------------


@contextmanager
def process_monitoring(
    port: int | None,
    name: str,
    collectors: Sequence[Collector],
    address: str = DEFAULT_METRICS_ADDRESS,
) -> Iterator[LoopProbe]:
    """With a port: ``collectors``, the figures every process has and this process's own, and
    the probes of its one loop ``name``, served on ``address``:``port`` until the block ends;
    the loop beats on the probe it is given. Without one: a probe that does nothing."""
    if port is None:
        yield NoProbe()
        return
    heartbeat = LocalHeartbeat(name)
    registry = process_registry(*common_metrics().collectors(), *collectors, *process_collectors())
    probes = Probes(heartbeat, [name], started_at=time.monotonic())
    server = ProbeServer(port, registry, probes, address)
    _start_or_exit(server)
    try:
        yield heartbeat
    finally:
        server.close()
