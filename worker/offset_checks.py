"""Whether the window's applied offsets still mean what they say about the input topic: pure
decisions over offsets, watermarks and a batch's first offsets (the worker does the I/O)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Truncated:
    """The window applied up to ``stored`` but the partition now ends before it (its log was
    truncated, or replaced by a cluster with the same topic id): read on from ``high``."""

    partition: int
    stored: int
    high: int  # the partition's high watermark: the offset its next message gets

    @property
    def gap(self) -> int:
        """Offsets the window counted that the partition no longer has."""
        return self.stored - self.high + 1

    @property
    def restart_at(self) -> int | None:
        """The new last applied offset: just before the high watermark (None: nothing)."""
        return self.high - 1 if self.high > 0 else None


def truncated_partitions(
    applied: Mapping[int, int | None], high_watermarks: Mapping[int, int]
) -> list[Truncated]:
    """Partitions whose applied offset is at or past their high watermark."""
    return [
        Truncated(partition, stored, high_watermarks[partition])
        for partition, stored in applied.items()
        if stored is not None
        and partition in high_watermarks
        and stored >= high_watermarks[partition]
    ]


def skipped_offsets(
    applied: Mapping[int, int | None], first_offsets: Mapping[int, int]
) -> dict[int, int]:
    """Partition -> how many offsets lie between the last applied one and the first one
    consumed now (removed by retention or truncation before they were read)."""
    skipped = {}
    for partition, first in first_offsets.items():
        last = applied.get(partition)
        if last is not None and first > last + 1:
            skipped[partition] = first - last - 1
    return skipped
