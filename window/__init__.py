"""The shared Redis window: key layout, bucket math, the atomic batch apply, the window read,
and the coarser tiers (rollup) that answer any range within the retention."""

from loginmetrics.window.applied_offsets import AppliedOffsets
from loginmetrics.window.apply import ApplyOutcome, NewIncarnation, PartitionAdvance, WindowWriter
from loginmetrics.window.errors import BadRangeError, RangeOutOfRetentionError, WindowConfigError
from loginmetrics.window.increments import WindowIncrements
from loginmetrics.window.layout import BucketField, Tier, WindowLayout
from loginmetrics.window.layout_record import (
    LayoutMismatchError,
    RecordedLayout,
    Role,
    await_layout_agreement,
    read_layout,
)
from loginmetrics.window.ranges import RangeAnswer, RangePlan, RangeReader, TierBucket, plan_range
from loginmetrics.window.read import WindowReader, WindowTotals
from loginmetrics.window.rollup import Rollup
from loginmetrics.window.throughput import RecentThroughput, recent_throughput

__all__ = [
    "AppliedOffsets",
    "ApplyOutcome",
    "BadRangeError",
    "BucketField",
    "LayoutMismatchError",
    "NewIncarnation",
    "PartitionAdvance",
    "RangeAnswer",
    "RangeOutOfRetentionError",
    "RangePlan",
    "RangeReader",
    "RecentThroughput",
    "RecordedLayout",
    "Role",
    "Rollup",
    "Tier",
    "TierBucket",
    "WindowConfigError",
    "WindowIncrements",
    "WindowLayout",
    "WindowReader",
    "WindowTotals",
    "WindowWriter",
    "await_layout_agreement",
    "plan_range",
    "read_layout",
    "recent_throughput",
]
