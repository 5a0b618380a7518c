"""What one poll batch adds to the window: plain data, built by the worker, written by apply."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass(slots=True)
class WindowIncrements:
    """Increments of one batch to the bucket it is applied in."""

    users: set[str] = field(default_factory=set)
    ips: set[str] = field(default_factory=set)
    devices: Counter[str] = field(default_factory=Counter)
    versions: Counter[str] = field(default_factory=Counter)
    locales: Counter[str] = field(default_factory=Counter)
    valid: int = 0
    invalid: int = 0

    @property
    def total(self) -> int:
        return self.valid + self.invalid
