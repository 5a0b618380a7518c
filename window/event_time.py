"""The rules of event time that workers and aggregators share: how late a message may be, how far
ahead of the Redis clock, and when a caught-up partition stops holding the windows back."""

from __future__ import annotations

import math
from dataclasses import dataclass

from loginmetrics.window.errors import WindowConfigError

# A partition's watermark trails its largest event time by this much: messages of one partition
# reach Kafka a little out of order (clients' clocks, retries, whole-second timestamps), and a
# window must not close on the first of them. 5 s covers the original generator's whole-second
# timestamps and a producer's retries, and delays each metric event by no more than that.
DEFAULT_MAX_DELAY_SECONDS = 5.0
# Later than the watermark by up to this, a message still updates its bucket and the windows
# already emitted with it are emitted again (revision + 1); later still, it is a dead letter.
DEFAULT_ALLOWED_LATENESS_SECONDS = 600.0
# A timestamp further ahead of the Redis clock is a client's wrong clock, not a login.
DEFAULT_MAX_FUTURE_SECONDS = 60.0
# A partition caught up with the end of its log for this long is idle: left out of the minimum.
DEFAULT_IDLE_AFTER_SECONDS = 10.0
# An idle mark that no worker refreshed for this long is stale (the worker is gone or cannot
# reach Redis): the partition holds the windows back again.
STALE_MARK_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class EventTimePolicy:
    max_delay_seconds: float = DEFAULT_MAX_DELAY_SECONDS
    allowed_lateness_seconds: float = DEFAULT_ALLOWED_LATENESS_SECONDS
    max_future_seconds: float = DEFAULT_MAX_FUTURE_SECONDS
    idle_after_seconds: float = DEFAULT_IDLE_AFTER_SECONDS

    def __post_init__(self) -> None:
        for option, value in (
            ("--max-delay", self.max_delay_seconds),
            ("--allowed-lateness", self.allowed_lateness_seconds),
            ("--max-future", self.max_future_seconds),
            ("--idle-after", self.idle_after_seconds),
        ):
            if not (math.isfinite(value) and value >= 0):
                raise WindowConfigError(f"{option} must be seconds >= 0, got {value}")
