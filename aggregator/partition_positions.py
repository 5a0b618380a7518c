"""Where the input topic's partitions stand: the window's applied offset against the log's bounds
and the group's commit, as ``status``, ``offsets`` and the HTTP API show them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PartitionPosition:
    """One partition: the window's last applied offset, the log's bounds and the group's commit
    (Kafka's convention: the next offset to read)."""

    partition: int
    applied: int | None
    low: int
    high: int
    committed: int | None = None

    @property
    def next_offset(self) -> int:
        """Where a worker taking the partition now starts reading: after the applied offset
        (Redis decides, not Kafka's commit); without one at the group's commit, else at the
        earliest offset (auto.offset.reset=earliest)."""
        if self.applied is not None:
            return self.applied + 1
        if self.committed is not None and self.committed >= 0:
            return self.committed
        return self.low

    @property
    def lag(self) -> int:
        """Messages the window has not applied yet (retention may have removed some)."""
        return max(0, self.high - max(self.next_offset, self.low))


@dataclass(frozen=True, slots=True)
class GroupMembers:
    """The consumer group as the broker describes it."""

    state: str
    members: tuple[str, ...]  # "client id on host", one per member


def positions(
    applied: Mapping[int, int | None],
    watermarks: Mapping[int, tuple[int, int]],
    committed: Mapping[int, int | None],
) -> list[PartitionPosition]:
    return [
        PartitionPosition(p, applied.get(p), low, high, committed.get(p))
        for p, (low, high) in sorted(watermarks.items())
    ]
