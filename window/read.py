"""Reads the totals of a window: distinct counts, distributions and counters over its buckets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import redis

from loginmetrics.window.layout import COUNT_INVALID, COUNT_VALID, BucketField, WindowLayout


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


def _distribution(pairs: list[tuple[Any, float]]) -> dict[str, int]:
    return {
        (name.decode() if isinstance(name, bytes) else str(name)): int(score)
        for name, score in pairs
    }


class WindowReader:
    """The aggregator's side of the window."""

    def __init__(self, client: redis.Redis, layout: WindowLayout) -> None:
        self._client = client
        self._layout = layout

    def server_time(self) -> float:
        """Redis server clock, the clock workers bucket by (epoch seconds)."""
        seconds, micros = self._client.time()
        return float(seconds) + float(micros) / 1_000_000

    def last_complete_window_end(self) -> int:
        """End of the newest window whose buckets can no longer receive writes."""
        return self._layout.bucket_start(self.server_time())

    def read(self, window_end: int) -> WindowTotals:
        """Totals of the window ending (exclusive) at ``window_end``, in one round trip.

        MULTI/EXEC makes the read one snapshot: a batch applied meanwhile is seen whole or not
        at all (it matters when the window still includes the bucket being written).
        """
        layout = self._layout
        starts = layout.window_bucket_starts(window_end)
        pipe = self._client.pipeline(transaction=True)
        pipe.pfcount(*layout.bucket_keys(starts, BucketField.USERS))
        pipe.pfcount(*layout.bucket_keys(starts, BucketField.IPS))
        for distribution in (BucketField.DEVICES, BucketField.VERSIONS, BucketField.LOCALES):
            pipe.zunion(layout.bucket_keys(starts, distribution), withscores=True)
        for key in layout.bucket_keys(starts, BucketField.COUNTS):
            pipe.hmget(key, [COUNT_VALID, COUNT_INVALID])
        users, ips, devices, versions, locales, *counts = pipe.execute()
        buckets = [
            BucketCounts(start, _as_int(valid), _as_int(invalid))
            for start, (valid, invalid) in zip(starts, counts, strict=True)
        ]
        valid, invalid, first_active = sum_bucket_counts(buckets)
        return WindowTotals(
            start=starts.start,
            end=window_end,
            valid=valid,
            invalid=invalid,
            active_users=int(users),
            unique_ips=int(ips),
            devices=_distribution(devices),
            versions=_distribution(versions),
            locales=_distribution(locales),
            first_active_bucket=first_active,
        )
