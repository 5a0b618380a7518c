"""When restarting a child stops making sense: it died too often lately. A pool of one process
(one per pod) then exits, so that the orchestrator sees the crash and applies its own backoff."""

from __future__ import annotations

from collections import deque

# This many exits within this many seconds is a crash loop. With the supervisor's restart
# backoff (1, 2, 4, 8 s...) five quick crashes take at least 15 s.
CRASH_LOOP_EXITS = 5
CRASH_LOOP_SECONDS = 120.0
# Exit code of a supervisor that gave up on a crash-looping child (sysexits.h EX_SOFTWARE).
EXIT_CRASH_LOOP = 70


class CrashLoop:
    """Counts a child's exits in a sliding time span; the clock is the caller's."""

    def __init__(self, exits: int = CRASH_LOOP_EXITS, within: float = CRASH_LOOP_SECONDS) -> None:
        self.exits = exits
        self.within = within
        self._times: deque[float] = deque()

    def exited(self, now: float) -> bool:
        """Record an exit at ``now``; True when it makes ``exits`` within ``within`` seconds."""
        self._times.append(now)
        while self._times and now - self._times[0] > self.within:
            self._times.popleft()
        return len(self._times) >= self.exits
