"""The frozen settings an aggregator process is started with (built by the CLI, pickled to a
child in ``run`` mode)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from loginmetrics.aggregator.metric_event import DEFAULT_MAX_DISTRIBUTION_VALUES
from loginmetrics.runtime import defaults
from loginmetrics.runtime.clients import SentinelConfig
from loginmetrics.runtime.errors import ConfigError
from loginmetrics.window import WindowLayout
from loginmetrics.window.errors import WindowConfigError
from loginmetrics.window.layout import TRACKED_VALUES, TimeBasis

# Below this a lease is renewed several times a second and a GC pause or a slow Redis reply
# would hand leadership back and forth.
MIN_LEASE_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class AggregatorSettings:
    # librdkafka settings shared by every client: bootstrap servers and security; may hold secrets.
    kafka: Mapping[str, str]
    redis_url: str
    # Set: find the Redis primary through Sentinel (redis_url then gives db, user, password, TLS).
    redis_sentinel: SentinelConfig | None = None
    layout: WindowLayout = field(default_factory=WindowLayout)
    metrics_topic: str = defaults.METRICS_TOPIC
    # Event time: the topic whose partitions' watermarks decide when a window is complete.
    input_topic: str = defaults.INPUT_TOPIC
    # Window lengths (seconds) published each tick, one metric event each; empty: the layout's
    # --window alone.
    windows: tuple[int, ...] = ()
    emit_interval_seconds: float = 10.0
    # The leader renews every third of this; a standby takes over at most ~4/3 of it after the
    # leader dies.
    lease_seconds: float = 15.0
    # Most values a metric event lists per distribution; the rest is summed under "__other__".
    max_distribution_values: int = DEFAULT_MAX_DISTRIBUTION_VALUES

    def __post_init__(self) -> None:
        if not (math.isfinite(self.emit_interval_seconds) and self.emit_interval_seconds > 0):
            raise WindowConfigError(
                f"--emit-interval must be a positive number of seconds, "
                f"got {self.emit_interval_seconds}"
            )
        if not (math.isfinite(self.lease_seconds) and self.lease_seconds >= MIN_LEASE_SECONDS):
            raise ConfigError(
                f"--lease-seconds must be at least {MIN_LEASE_SECONDS:g}, got {self.lease_seconds}"
            )
        interval = self.emit_interval_seconds
        bucket = self.layout.bucket_seconds
        if self.layout.time_basis is TimeBasis.EVENT and (
            interval != int(interval) or int(interval) % bucket
        ):
            raise WindowConfigError(
                f"--emit-interval ({interval:g} s) must be a whole multiple of --bucket-seconds "
                f"({bucket} s) in event time: every window end is a bucket boundary"
            )
        for length in self.windows:
            if length < bucket or length % bucket:
                raise WindowConfigError(
                    f"--windows: {length} s is not a positive multiple of --bucket-seconds "
                    f"({bucket} s)"
                )
            if length > self.layout.window_seconds:
                raise WindowConfigError(
                    f"--windows: {length} s is longer than --window ({self.layout.window_seconds}"
                    " s), the second buckets the workers keep; start the workers and aggregators "
                    f"with --window {max(self.windows)}"
                )
        if len(set(self.windows)) != len(self.windows):
            raise WindowConfigError(f"--windows names a length twice: {self.windows}")
        if not self.metrics_topic:
            raise ConfigError("--metrics-topic must not be empty")
        if not 1 <= self.max_distribution_values <= TRACKED_VALUES:
            # More than a bucket tracks would list nothing more, and only make events larger.
            raise ConfigError(
                f"--max-distribution-values must be between 1 and {TRACKED_VALUES}, "
                f"got {self.max_distribution_values}"
            )

    @property
    def window_lengths(self) -> tuple[int, ...]:
        """The window lengths published each tick, shortest first."""
        return tuple(sorted(self.windows)) if self.windows else (self.layout.window_seconds,)

    @property
    def renew_interval_seconds(self) -> float:
        """How often the leader renews and a standby tries to take the lease."""
        return self.lease_seconds / 3

    @property
    def flush_timeout_seconds(self) -> float:
        # Bounded so that waiting for Kafka never outlasts a lease renewal.
        return min(5.0, self.emit_interval_seconds, self.renew_interval_seconds)

    def producer_config(self) -> dict[str, str | int | bool]:
        return {
            **self.kafka,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 50,
            "compression.type": "lz4",
            # A metric event older than this is not worth delivering any more.
            "message.timeout.ms": 60_000,
        }
