"""Lets the first processes of a pool subscribe together, so that the group splits the partitions
between them in one rebalance instead of the first taking them all and handing half over."""

from __future__ import annotations

import atexit
import os
import tempfile
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass

# Longest wait for the siblings (one that failed to start is not waited for longer).
JOIN_GATE_SECONDS = 3.0
POLL_SECONDS = 0.001


@dataclass(frozen=True, slots=True)
class JoinGate:
    """A file the supervisor creates: each first process adds a byte and waits until there is
    one per process. A process started later (a restart) finds the file gone and goes on."""

    path: str
    members: int

    @classmethod
    def create(cls, members: int) -> JoinGate:
        handle, path = tempfile.mkstemp(prefix="loginmetrics-join-")
        os.close(handle)
        # Normally the last process through removes it; if the pool never got that far, the
        # process that created it does, on its way out (spawned children do not inherit this).
        atexit.register(_remove, path)
        return cls(path, members)

    def pass_together(
        self,
        timeout: float = JOIN_GATE_SECONDS,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] = time.sleep,
    ) -> bool:
        """Arrive and wait for the others; False when the gate was already gone."""
        try:
            handle = os.open(self.path, os.O_WRONLY | os.O_APPEND)  # never creates it again
        except FileNotFoundError:
            return False
        try:
            os.write(handle, b".")
        finally:
            os.close(handle)
        deadline = clock() + timeout
        while clock() < deadline:
            try:
                if os.stat(self.path).st_size >= self.members:
                    break
            except FileNotFoundError:
                return True  # all arrived, and a sibling removed it
            sleep(POLL_SECONDS)
        with suppress(FileNotFoundError):
            os.unlink(self.path)
        return True


def _remove(path: str) -> None:
    with suppress(FileNotFoundError):
        os.unlink(path)
