"""The Prometheus metric names loginmetrics exports (spec §6, issue 14): the one list that the
alert rules, the dashboard and the running services are all checked against."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

WORKER_JOB = "loginmetrics-worker"
AGGREGATOR_JOB = "loginmetrics-aggregator"
JOBS = (WORKER_JOB, AGGREGATOR_JOB)

# Labels Prometheus adds to every scraped series (namespace: the Prometheus Operator's, which
# tells installs apart; absent elsewhere), and the one a histogram's buckets carry.
TARGET_LABELS = frozenset({"job", "instance", "namespace"})
BUCKET_LABEL = "le"

Kind = Literal["counter", "gauge", "histogram"]


@dataclass(frozen=True)
class Metric:
    """One exported metric: its exposed name, type, own labels and the jobs that export it."""

    name: str
    kind: Kind
    labels: frozenset[str]
    jobs: frozenset[str]

    @property
    def series_names(self) -> frozenset[str]:
        """Names of the samples in a scrape (a histogram has three)."""
        if self.kind == "histogram":
            return frozenset(f"{self.name}_{suffix}" for suffix in ("bucket", "sum", "count"))
        return frozenset({self.name})


def _metric(name: str, kind: Kind, labels: tuple[str, ...], *jobs: str) -> Metric:
    return Metric(name, kind, frozenset(labels), frozenset(jobs))


_WORKER = (WORKER_JOB,)
_AGGREGATOR = (AGGREGATOR_JOB,)
_BOTH = JOBS

CONTRACT: tuple[Metric, ...] = (
    # Workers
    _metric("loginmetrics_messages_total", "counter", ("outcome",), *_WORKER),
    _metric("loginmetrics_dead_letters_total", "counter", ("error_code",), *_WORKER),
    _metric("loginmetrics_batches_total", "counter", ("result",), *_WORKER),
    _metric("loginmetrics_batch_apply_seconds", "histogram", (), *_WORKER),
    _metric("loginmetrics_consumer_lag_messages", "gauge", ("topic", "partition"), *_WORKER),
    _metric("loginmetrics_offset_gaps_total", "counter", (), *_WORKER),
    _metric("loginmetrics_partitions_paused", "gauge", (), *_WORKER),
    # Both roles talk to Redis and log.
    _metric("loginmetrics_redis_errors_total", "counter", ("kind",), *_BOTH),
    _metric("loginmetrics_log_events_total", "counter", ("level",), *_BOTH),
    # Aggregator
    _metric("loginmetrics_metric_events_total", "counter", (), *_AGGREGATOR),
    _metric("loginmetrics_aggregator_leader", "gauge", (), *_AGGREGATOR),
    _metric("loginmetrics_window_read_seconds", "histogram", (), *_AGGREGATOR),
    _metric("loginmetrics_window_messages", "gauge", (), *_AGGREGATOR),
    _metric("loginmetrics_window_errors", "gauge", (), *_AGGREGATOR),
    _metric("loginmetrics_window_error_rate", "gauge", (), *_AGGREGATOR),
    _metric("loginmetrics_window_active_users", "gauge", (), *_AGGREGATOR),
    _metric("loginmetrics_window_unique_ips", "gauge", (), *_AGGREGATOR),
    _metric("loginmetrics_window_processing_rate", "gauge", (), *_AGGREGATOR),
    _metric("loginmetrics_watermark_lag_seconds", "gauge", (), *_AGGREGATOR),
    # Prometheus' own, per scrape target.
    _metric("up", "gauge", (), *_BOTH),
)

# prometheus-client's process collector, which every role serves (a pool summed over its
# processes); the dashboard's CPU and RSS panels read these. Their names are the standard ones,
# not loginmetrics_*, so they stay out of CONTRACT's naming rules.
PROCESS: tuple[Metric, ...] = (
    _metric("process_cpu_seconds_total", "counter", (), *_BOTH),
    _metric("process_resident_memory_bytes", "gauge", (), *_BOTH),
)

# Label values the rules and dashboard rely on.
OUTCOMES = frozenset({"valid", "invalid"})
BATCH_RESULTS = frozenset({"applied", "refused"})


def by_series_name() -> dict[str, Metric]:
    """Every sample name a query may use, mapped to its metric."""
    return {series: metric for metric in CONTRACT + PROCESS for series in metric.series_names}
