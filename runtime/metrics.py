"""How a process's Prometheus figures are made and reach a scrape: one set per process, in its own
registry or in prometheus-client's multiprocess mode for a pool whose supervisor serves every
process's figures in one scrape; and the figures every process has (the names are spec §6's)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import TypeVar

import redis
from prometheus_client import (
    CollectorRegistry,
    Counter,
    disable_created_metrics,
    values,
)
from prometheus_client.registry import Collector

from loginmetrics.runtime.metrics_files import PoolFilesCollector, archive_dead_process
from loginmetrics.runtime.redis_errors import NOT_NOW_CODES, error_code

# Set in a pool's environment (by the supervisor, before spawning): the private directory where
# each process's figures are kept (prometheus-client's multiprocess mode reads it at import).
MULTIPROCESS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# Kinds of Redis error that exist at 0 from the start (a pool exports only series it has seen).
EXPECTED_REDIS_ERROR_KINDS = ("connection", "timeout", *sorted(NOT_NOW_CODES))
# Seconds of one Redis operation: a Lua script over 1-10k messages takes ~1-20 ms on a healthy
# Redis, a few multi-key commands less; the upper buckets catch a struggling server.
SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

Figures = TypeVar("Figures")


class CommonMetrics:
    """Figures of every process: Redis errors and log records."""

    def __init__(self) -> None:
        self.redis_errors = Counter(
            "loginmetrics_redis_errors",
            "Redis commands that failed, by kind: the server's error code (OOM, READONLY, "
            "LOADING, NOPERM...) or connection/timeout/other for client-side failures",
            ["kind"],
            registry=None,
        )
        self.log_events = Counter(
            "loginmetrics_log_events", "Log records written, by level", ["level"], registry=None
        )
        # At 0 from the start, so that increase() sees the first one.
        for level in LOG_LEVELS:
            self.log_events.labels(level)
        for kind in EXPECTED_REDIS_ERROR_KINDS:
            self.redis_errors.labels(kind)

    def redis_error(self, exc: redis.RedisError) -> None:
        self.redis_errors.labels(redis_error_kind(exc)).inc()

    def collectors(self) -> list[Collector]:
        return [self.redis_errors, self.log_events]


# Every cached set of figures, so that a switch to multiprocess mode drops them all (a feature
# declares its own with @one_per_process; runtime does not know which there are).
_PER_PROCESS: list[Callable[[], None]] = []


def one_per_process(make: Callable[[], Figures]) -> Callable[[], Figures]:
    """One set of figures per process, made on first use: a pool's supervisor switches to
    multiprocess mode first (see use_multiprocess_dir), and a spawned child finds the directory
    in its environment."""
    made = cache(make)
    _PER_PROCESS.append(made.cache_clear)
    return made


@one_per_process
def common_metrics() -> CommonMetrics:
    return CommonMetrics()


def redis_error_kind(exc: redis.RedisError) -> str:
    """A label with few values: the server's error code, else the kind of client failure."""
    code = error_code(exc)
    if code:
        return code
    if isinstance(exc, redis.TimeoutError):
        return "timeout"
    if isinstance(exc, redis.ConnectionError):
        return "connection"
    return "other"


class LogEventCounter(logging.Handler):
    """Counts every record the process logs, by level: one rule alerts on any ERROR."""

    def __init__(self) -> None:
        super().__init__()
        common_metrics()  # every level at 0 from the start

    def emit(self, record: logging.LogRecord) -> None:
        common_metrics().log_events.labels(record.levelname).inc()


def use_multiprocess_dir(path: str) -> None:
    """Keep this process's figures in ``path`` and give it to the processes it spawns.

    prometheus-client picks its value store when it is imported, from the environment; a
    supervisor imports it before it knows its port, so it switches here, before it makes any
    metric, and drops the ones made before (a log handler's)."""
    os.environ[MULTIPROCESS_DIR_ENV] = path
    values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]
    for forget in _PER_PROCESS:
        forget()
    common_metrics()


def pool_metrics_served() -> bool:
    """This process belongs to a pool whose figures are served (its supervisor has a port)."""
    return bool(os.environ.get(MULTIPROCESS_DIR_ENV))


def pool_registry(path: str) -> CollectorRegistry:
    """A registry with the figures of every process that kept them in ``path`` (the archive of
    the exited ones included)."""
    registry = CollectorRegistry()
    registry.register(PoolFilesCollector(Path(path)))
    return registry


def process_registry(*collectors: Collector) -> CollectorRegistry:
    """A registry with this process's own ``collectors`` (a single-process command)."""
    # The *_created samples say when a counter was made: noise for loginmetrics' rules.
    disable_created_metrics()  # type: ignore[no-untyped-call]
    registry = CollectorRegistry()
    for collector in collectors:
        registry.register(collector)
    return registry


def process_exited(pid: int, path: str) -> None:
    """Forget the gauges of a pool process that exited; its counters and histograms stay summed,
    in the pool's archive, and its files are gone."""
    archive_dead_process(Path(path), pid)
