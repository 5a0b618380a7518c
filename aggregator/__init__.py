"""The aggregator: reads the shared window, builds metric events and publishes them, batched;
one active leader per window (a Redis lease), the others stand by."""

from loginmetrics.aggregator.lease import AggregatorLease, Claim, ClaimStatus
from loginmetrics.aggregator.metric_event import (
    MetricEvent,
    build_metric_event,
    encode_metric_event,
)
from loginmetrics.aggregator.process import (
    run_aggregator,
    run_aggregator_in_foreground,
    run_aggregator_process,
)
from loginmetrics.aggregator.service import Aggregator
from loginmetrics.aggregator.settings import AggregatorSettings
from loginmetrics.aggregator.ticks import tick_window_end

__all__ = [
    "Aggregator",
    "AggregatorLease",
    "AggregatorSettings",
    "Claim",
    "ClaimStatus",
    "MetricEvent",
    "build_metric_event",
    "encode_metric_event",
    "run_aggregator",
    "run_aggregator_in_foreground",
    "run_aggregator_process",
    "tick_window_end",
]
