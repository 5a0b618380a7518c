"""Reads the totals of a window: distinct counts, distributions and counters over its buckets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import redis

from loginmetrics.window.layout import (
    COUNT_INVALID,
    COUNT_VALID,
    OTHER_VALUES,
    BucketField,
    WindowLayout,
)

DISTRIBUTIONS = (BucketField.DEVICES, BucketField.VERSIONS, BucketField.LOCALES)


@dataclass(frozen=True, slots=True)
class BucketCounts:
    """Valid and invalid messages applied in one bucket."""

    start: int
    valid: int
    invalid: int


@dataclass(frozen=True, slots=True)
class WindowTotals:
    """Everything a metric event needs about the window ``[start, end)`` (epoch seconds)."""

    start: int
    end: int
    valid: int
    invalid: int
    active_users: int
    unique_ips: int
    devices: dict[str, int] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)
    locales: dict[str, int] = field(default_factory=dict)
    # Start of the oldest bucket that saw any message; None for an empty window.
    first_active_bucket: int | None = None

    @property
    def total_messages(self) -> int:
        return self.valid + self.invalid


def sum_bucket_counts(buckets: Sequence[BucketCounts]) -> tuple[int, int, int | None]:
    """Total valid, total invalid, and the start of the first bucket with any message."""
    valid = sum(b.valid for b in buckets)
    invalid = sum(b.invalid for b in buckets)
    first = next((b.start for b in buckets if b.valid or b.invalid), None)
    return valid, invalid, first


def _as_int(raw: Any) -> int:
    return 0 if raw is None else int(raw)


def _name(raw: Any) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def top_distribution(
    pairs: list[tuple[Any, float]], cardinality: int, total: int, max_values: int
) -> dict[str, int]:
    """A distribution from its largest ``pairs`` (largest first) out of ``cardinality`` values
    summing to ``total``: whole when every value was read, otherwise the ``max_values`` largest
    and the rest under ``OTHER_VALUES``, so that it still sums to ``total``."""
    counts = {_name(name): int(score) for name, score in pairs}
    named = len(counts) - (OTHER_VALUES in counts)
    if cardinality <= len(counts) and named <= max_values:
        return counts
    counts.pop(OTHER_VALUES, None)
    listed = dict(list(counts.items())[:max_values])
    listed[OTHER_VALUES] = total - sum(listed.values())
    return listed


class WindowReader:
    """The aggregator's side of the window."""

    def __init__(
        self, client: redis.Redis, layout: WindowLayout, max_values: int | None = None
    ) -> None:
        """``max_values``: most values read per distribution (default: as many as a bucket
        tracks); the others are summed under ``OTHER_VALUES``."""
        self._client = client
        self._layout = layout
        self._max_values = layout.tracked_values if max_values is None else max_values

    def server_time(self) -> float:
        """Redis server clock, the clock workers bucket by (epoch seconds)."""
        seconds, micros = self._client.time()
        return float(seconds) + float(micros) / 1_000_000

    def last_complete_window_end(self) -> int:
        """End of the newest window whose buckets can no longer receive writes."""
        return self._layout.bucket_start(self.server_time())

    def read(self, window_end: int, seconds: int | None = None) -> WindowTotals:
        """Totals of the window ending (exclusive) at ``window_end`` and lasting ``seconds``
        (default: the layout's window), in one round trip.

        MULTI/EXEC makes the read one snapshot: a batch applied meanwhile is seen whole or not
        at all (it matters when the window still includes the bucket being written). Each
        distribution's union is stored in a scratch key, read largest first up to
        ``max_values`` (plus one, in case ``OTHER_VALUES`` is among them) and deleted: the reply
        stays small however many values the window's buckets track.
        """
        layout = self._layout
        starts = layout.window_bucket_starts(window_end, seconds)
        pipe = self._client.pipeline(transaction=True)
        pipe.pfcount(*layout.bucket_keys(starts, BucketField.USERS))
        pipe.pfcount(*layout.bucket_keys(starts, BucketField.IPS))
        for distribution in DISTRIBUTIONS:
            union = layout.union_key(distribution)
            pipe.zunionstore(union, layout.bucket_keys(starts, distribution))
            pipe.zrevrange(union, 0, self._max_values, withscores=True)
            pipe.delete(union)
        for key in layout.bucket_keys(starts, BucketField.COUNTS):
            pipe.hmget(key, [COUNT_VALID, COUNT_INVALID])
        users, ips, *replies = pipe.execute()
        unions, counts = replies[: 3 * len(DISTRIBUTIONS)], replies[3 * len(DISTRIBUTIONS) :]
        buckets = [
            BucketCounts(start, _as_int(valid), _as_int(invalid))
            for start, (valid, invalid) in zip(starts, counts, strict=True)
        ]
        valid, invalid, first_active = sum_bucket_counts(buckets)
        devices, versions, locales = (
            top_distribution(unions[i + 1], int(unions[i]), valid, self._max_values)
            for i in range(0, len(unions), 3)
        )
        return WindowTotals(
            start=starts.start,
            end=window_end,
            valid=valid,
            invalid=invalid,
            active_users=int(users),
            unique_ips=int(ips),
            devices=devices,
            versions=versions,
            locales=locales,
            first_active_bucket=first_active,
        )
