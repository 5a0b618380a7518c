"""The aggregator: reads the shared window, builds metric events and publishes them, batched;
one active leader per window (a Redis lease), the others stand by."""

from aggregator.lease import AggregatorLease, Claim, ClaimStatus
from aggregator.metric_event import MetricEvent, build_metric_event, encode_metric_event
from aggregator.process import (
    run_aggregator,
    run_aggregator_in_foreground,
    run_aggregator_process,
)
from aggregator.service import Aggregator
from aggregator.settings import AggregatorSettings
from aggregator.ticks import tick_window_end

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
