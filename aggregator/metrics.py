"""The aggregator's Prometheus figures (names are spec §6's): metric events, leadership, window
read time and the totals of the last metric event it published."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.registry import Collector

from loginmetrics.runtime.metrics import SECONDS_BUCKETS, one_per_process


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
        self.watermark_lag_seconds = Gauge(
            "loginmetrics_watermark_lag_seconds",
            "Event time: seconds the global watermark trails the Redis clock (a backlog, or a "
            "partition that holds the windows back)",
            multiprocess_mode="livemostrecent",
            registry=None,
        )

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
            self.watermark_lag_seconds,
        ]


@one_per_process
def aggregator_metrics() -> AggregatorMetrics:
    return AggregatorMetrics()
