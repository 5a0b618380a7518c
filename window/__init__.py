"""The shared Redis window: key layout, bucket math, the atomic batch apply and the window read."""

from window.apply import ApplyOutcome, PartitionAdvance, WindowWriter
from window.errors import LoginMetricsError, WindowConfigError
from window.increments import WindowIncrements
from window.layout import BucketField, WindowLayout
from window.read import WindowReader, WindowTotals

__all__ = [
    "ApplyOutcome",
    "BucketField",
    "LoginMetricsError",
    "PartitionAdvance",
    "WindowConfigError",
    "WindowIncrements",
    "WindowLayout",
    "WindowReader",
    "WindowTotals",
    "WindowWriter",
]
