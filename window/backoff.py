"""Bounded exponential backoff with jitter, shared by everything that retries I/O."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    initial_seconds: float = 0.1
    max_seconds: float = 5.0
    multiplier: float = 2.0

    def delays(self) -> Iterator[float]:
        """Endless delays: doubling up to the cap, each with +-20 % jitter."""
        delay = self.initial_seconds
        while True:
            yield delay * random.uniform(0.8, 1.2)
            delay = min(delay * self.multiplier, self.max_seconds)
