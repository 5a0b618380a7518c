"""The worker's Prometheus figures (names are spec §6's): messages and dead letters by outcome,
batches applied or refused, apply time, consumer lag, offset gaps and paused partitions."""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterable

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.registry import Collector

from loginmetrics.runtime.metrics import SECONDS_BUCKETS, one_per_process

# Dead letters of event time whose payload is valid: counted as their own outcome.
UNTIMELY_CODES = frozenset({"too_late", "future_timestamp"})


class WorkerMetrics:
    """Figures of a worker process; recorded once per batch, never per message."""

    def __init__(self) -> None:
        self.messages = Counter(
            "loginmetrics_messages",
            "Messages applied to the window, by outcome: valid; invalid, too_late or "
            "future_timestamp (event time), each sent to the DLQ",
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
            untimely = 0
            for code, count in Tally(codes).items():
                self.dead_letters.labels(code).inc(count)
                if code in UNTIMELY_CODES:  # valid logins that event time cannot place
                    self.messages.labels(code).inc(count)
                    untimely += count
            if invalid > untimely:
                self._invalid.inc(invalid - untimely)

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


@one_per_process
def worker_metrics() -> WorkerMetrics:
    return WorkerMetrics()
