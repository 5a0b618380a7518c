"""Failed attempts at one piece of work: how many in a row, when the next is due (bounded,
jittered backoff) and when the log should get loud. Every loop that retries I/O keeps one."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator

from loginmetrics.runtime.backoff import Backoff

# Consecutive failures after which a retry is logged at ERROR instead of WARNING: a blip of a
# few seconds stays a warning, an outage that lasts pages someone.
LOUD_AFTER_FAILURES = 5


class Attempts:
    """A failure count and the backoff between attempts; ``succeeded()`` starts over."""

    def __init__(
        self,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.monotonic,
        loud_after: int = LOUD_AFTER_FAILURES,
    ) -> None:
        self._backoff = backoff or Backoff()
        self._clock = clock
        self._loud_after = loud_after
        self._delays: Iterator[float] | None = None
        self.failures = 0
        self._due_at = 0.0

    def failed(self) -> float:
        """Count a failure; return the seconds to wait before the next attempt."""
        if self._delays is None:
            self._delays = self._backoff.delays()
        self.failures += 1
        delay = next(self._delays)
        self._due_at = self._clock() + delay
        return delay

    def succeeded(self) -> int:
        """Start over; return how many attempts had failed before this success."""
        failures, self.failures, self._delays, self._due_at = self.failures, 0, None, 0.0
        return failures

    def wait(self) -> float:
        """Seconds until the next attempt is due (0.0: due now, or nothing failed)."""
        return max(0.0, self._due_at - self._clock())

    @property
    def log_level(self) -> int:
        """WARNING for the first failures in a row, ERROR once they last."""
        return logging.ERROR if self.failures >= self._loud_after else logging.WARNING
