"""The shared Redis window: key layout, bucket math, the atomic batch apply and the window read."""

from loginmetrics.window.applied_offsets import AppliedOffsets
from loginmetrics.window.apply import ApplyOutcome, NewIncarnation, PartitionAdvance, WindowWriter
from loginmetrics.window.errors import WindowConfigError
from loginmetrics.window.increments import WindowIncrements
from loginmetrics.window.layout import BucketField, WindowLayout
from loginmetrics.window.layout_record import (
    LayoutMismatchError,
    RecordedLayout,
    Role,
    await_layout_agreement,
    read_layout,
)
from loginmetrics.window.read import WindowReader, WindowTotals
from loginmetrics.window.throughput import RecentThroughput, recent_throughput

__all__ = [
    "AppliedOffsets",
    "ApplyOutcome",
    "BucketField",
    "LayoutMismatchError",
    "NewIncarnation",
    "PartitionAdvance",
    "RecentThroughput",
    "RecordedLayout",
    "Role",
    "WindowConfigError",
    "WindowIncrements",
    "WindowLayout",
    "WindowReader",
    "WindowTotals",
    "WindowWriter",
    "await_layout_agreement",
    "read_layout",
    "recent_throughput",
]
