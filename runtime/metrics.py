"""Every Prometheus metric loginmetrics exports (the names are a contract, spec §6), and how a
process's figures reach a scrape: its own registry, or prometheus-client's multiprocess mode
for a pool whose supervisor serves every process's figures in one scrape."""

from __future__ import annotations

import logging
import os
from collections import Counter as Tally
from collections.abc import Iterable
from functools import cache
from pathlib import Path

import redis
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
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
# A batch apply is one Lua script of 1-10k messages (~1-20 ms on a healthy Redis); a window
# read is a few multi-key commands over the window's buckets.
SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


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


class WorkerMetrics:
    """Figures of a worker process; recorded once per batch, never per message."""

    def __init__(self) -> None:
        self.messages = Counter(
            "loginmetrics_messages",
            "Messages applied to the window, by outcome (valid, or invalid: sent to the DLQ)",
            ["outcome"],
            registry=None,
        )
        self._valid = self.messages.labels("valid")
        self._invalid = self.messages.labels("invalid")
        self.dead_letters = Counter(
            "loginmetrics_dead_letters",
            "Invalid messages applied to the window and sent to the dead-letter queue, by code",
            ["error_code"],
            registry=None,
        )
        self.batches = Counter(
            "loginmetrics_batches",
            "Batches offered to the window: applied, or refused by the compare-and-set because "
            "another worker applied past them (a rebalance or a zombie)",
            ["result"],
            registry=None,
        )
        self._applied = self.batches.labels("applied")
        self._refused = self.batches.labels("refused")
        self.batch_apply_seconds = Histogram(
            "loginmetrics_batch_apply_seconds",
            "Seconds to apply one batch to Redis (one Lua script call)",
            buckets=SECONDS_BUCKETS,
            registry=None,
        )
        # The most recent value wins across a pool: a partition that moved to another process
        # of the pool is reported by its new owner.
        self.consumer_lag = Gauge(
            "loginmetrics_consumer_lag_messages",
            "Messages of an owned input partition not yet applied and committed (librdkafka "
            "statistics); 0 once the partition is revoked",
            ["topic", "partition"],
            multiprocess_mode="livemostrecent",
            registry=None,
        )
        self.offset_gaps = Counter(
            "loginmetrics_offset_gaps",
            "Input offsets removed by retention or truncation before a worker read them",
            registry=None,
        )
        self.partitions_paused = Gauge(
            "loginmetrics_partitions_paused",
            "Input partitions paused while the window (Redis) or the DLQ cannot take writes",
            multiprocess_mode="livesum",
            registry=None,
        )

    def batch_applied(self, valid: int, invalid: int, codes: Iterable[str], seconds: float) -> None:
        self._applied.inc()
        self.batch_apply_seconds.observe(seconds)
        if valid:
            self._valid.inc(valid)
        if invalid:
            self._invalid.inc(invalid)
            for code, count in Tally(codes).items():
                self.dead_letters.labels(code).inc(count)

    def batch_refused(self, seconds: float) -> None:
        self._refused.inc()
        self.batch_apply_seconds.observe(seconds)

    def offsets_skipped(self, count: int) -> None:
        """``count`` input offsets were gone (retention, truncation) before they were read."""
        self.offset_gaps.inc(count)

    def lags(self, topic: str, lags: dict[int, int]) -> None:
        for partition, lag in lags.items():
            self.consumer_lag.labels(topic, str(partition)).set(lag)

    def collectors(self) -> list[Collector]:
        return [
            self.messages,
            self.dead_letters,
            self.batches,
            self.batch_apply_seconds,
            self.consumer_lag,
            self.offset_gaps,
            self.partitions_paused,
        ]


class AggregatorMetrics:
    """Figures of an aggregator: leadership, events, and the last window it published."""

    def __init__(self) -> None:
        self.metric_events = Counter(
            "loginmetrics_metric_events", "Metric events produced", registry=None
        )
        self.leader = Gauge(
            "loginmetrics_aggregator_leader",
            "1 while this aggregator holds the leadership lease and emits, else 0",
            multiprocess_mode="livesum",
            registry=None,
        )
        self.window_read_seconds = Histogram(
            "loginmetrics_window_read_seconds",
            "Seconds to read the window's totals from Redis for one metric event",
            buckets=SECONDS_BUCKETS,
            registry=None,
        )

        def window(name: str, meaning: str) -> Gauge:
            return Gauge(
                f"loginmetrics_window_{name}",
                f"{meaning}, in the last metric event this aggregator published",
                multiprocess_mode="livemostrecent",
                registry=None,
            )

        self.window_messages = window("messages", "Messages (valid and invalid) in the window")
        self.window_errors = window("errors", "Invalid messages in the window")
        self.window_error_rate = window("error_rate", "Percentage (0-100) of invalid messages")
        self.window_active_users = window("active_users", "Distinct user_id (HyperLogLog)")
        self.window_unique_ips = window("unique_ips", "Distinct ip (HyperLogLog)")
        self.window_processing_rate = window("processing_rate", "Messages per second")

    def published(
        self,
        messages: int,
        errors: int,
        error_rate: float,
        active_users: int,
        unique_ips: int,
        processing_rate: float,
    ) -> None:
        self.metric_events.inc()
        self.window_messages.set(messages)
        self.window_errors.set(errors)
        self.window_error_rate.set(error_rate)
        self.window_active_users.set(active_users)
        self.window_unique_ips.set(unique_ips)
        self.window_processing_rate.set(processing_rate)

    def collectors(self) -> list[Collector]:
        return [
            self.metric_events,
            self.leader,
            self.window_read_seconds,
            self.window_messages,
            self.window_errors,
            self.window_error_rate,
            self.window_active_users,
            self.window_unique_ips,
            self.window_processing_rate,
        ]


# One set per process, made on first use: a pool's supervisor switches to multiprocess mode
# first (see use_multiprocess_dir), and a spawned child finds the directory in its environment.
@cache
def common_metrics() -> CommonMetrics:
    return CommonMetrics()


@cache
def worker_metrics() -> WorkerMetrics:
    return WorkerMetrics()


@cache
def aggregator_metrics() -> AggregatorMetrics:
    return AggregatorMetrics()


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
    for made in (common_metrics, worker_metrics, aggregator_metrics):
        made.cache_clear()
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
