"""Bounded exponential backoff with jitter, shared by everything that retries I/O."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

# (low, high) -> a factor in that range; tests pass a fixed one.
Jitter = Callable[[float, float], float]


@dataclass(frozen=True, slots=True)
class Backoff:
    initial_seconds: float = 0.1
    max_seconds: float = 5.0
    multiplier: float = 2.0
    jitter: Jitter = field(default=random.uniform, compare=False)

    def delays(self) -> Iterator[float]:
        """Endless delays: doubling up to the cap, each with +-20 % jitter."""
        delay = self.initial_seconds
        while True:
            yield delay * self.jitter(0.8, 1.2)
            delay = min(delay * self.multiplier, self.max_seconds)
