"""Event time as the window holds it: the partitions' watermarks, which of them are caught up,
where emission starts and which buckets were written late, read in one round trip."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis

from loginmetrics.window.event_time import STALE_MARK_SECONDS, EventTimePolicy
from loginmetrics.window.layout import BucketField, WindowLayout


def _text(raw: Any) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


@dataclass(frozen=True, slots=True)
class CaughtUp:
    """A worker found the partition caught up with its log's end from ``since`` on, last at
    ``seen`` (Redis clock seconds)."""

    since: float
    seen: float


@dataclass(frozen=True, slots=True)
class EventClockReading:
    now: float  # the Redis clock
    watermarks: Mapping[int, float]
    caught_up: Mapping[int, CaughtUp]
    first_bucket: int | None  # the oldest bucket any message was written to
    # bucket start -> late writes counted so far (what the aggregator must take back after use)
    late_buckets: Mapping[int, int] = field(default_factory=dict)


def idle_partitions(reading: EventClockReading, policy: EventTimePolicy) -> set[int]:
    """Partitions caught up for ``idle_after`` seconds, by a mark a worker still refreshes."""
    return {
        p
        for p, mark in reading.caught_up.items()
        if reading.now - mark.since >= policy.idle_after_seconds
        and reading.now - mark.seen <= STALE_MARK_SECONDS
    }


def global_watermark(
    reading: EventClockReading, policy: EventTimePolicy, partitions: int
) -> float | None:
    """The minimum watermark over the input topic's ``partitions`` that are not idle: no window
    ends after it until each of them has passed it. None while a partition that is not idle
    has no watermark yet (its first messages may be older than every other's) or before any
    message. When every partition is idle, the Redis clock minus the delay, so that quiet
    times still close their windows."""
    if reading.first_bucket is None or partitions < 1:
        return None
    idle = idle_partitions(reading, policy)
    busy = [p for p in range(partitions) if p not in idle]
    if any(p not in reading.watermarks for p in busy):
        return None
    if busy:
        return min(reading.watermarks[p] for p in busy)
    return reading.now - policy.max_delay_seconds


class EventClock:
    """The aggregator's reads and the one write of event time's bookkeeping."""

    def __init__(self, client: redis.Redis, layout: WindowLayout, topic: str) -> None:
        self._client = client
        self._layout = layout
        self._watermarks_key = layout.watermarks_key(topic)
        self._caught_up_key = layout.caught_up_key(topic)

    def read(self) -> EventClockReading:
        layout = self._layout
        pipe = self._client.pipeline(transaction=True)
        pipe.time()
        pipe.hgetall(self._watermarks_key)
        pipe.hgetall(self._caught_up_key)
        pipe.get(layout.first_bucket_key)
        pipe.zrange(layout.late_buckets_key, 0, -1, withscores=True)
        (seconds, micros), marks, caught, first, late = pipe.execute()
        caught_up = {}
        for partition, value in caught.items():
            since, _, seen = _text(value).partition(":")
            caught_up[int(partition)] = CaughtUp(float(since), float(seen))
        return EventClockReading(
            now=float(seconds) + float(micros) / 1_000_000,
            watermarks={int(p): float(w) for p, w in marks.items()},
            caught_up=caught_up,
            first_bucket=None if first is None else int(first),
            late_buckets={int(_text(m)): int(score) for m, score in late},
        )

    def settle_late(self, late_buckets: Mapping[int, int]) -> None:
        """The windows of these late buckets were emitted again: take back the late writes
        counted when they were read; a bucket written late again meanwhile stays."""
        if not late_buckets:
            return
        key = self._layout.late_buckets_key
        pipe = self._client.pipeline(transaction=True)
        for bucket, count in late_buckets.items():
            pipe.zincrby(key, -count, str(bucket))
        pipe.zremrangebyscore(key, "-inf", 0)
        pipe.execute()

    def prune(self, before: int, most: int) -> int:
        """Delete the second buckets older than ``before`` that are still there, at most
        ``most`` of them (oldest first); returns the start the pruning has reached."""
        layout = self._layout
        raw = self._client.get(layout.pruned_before_key)
        start = int(raw) if raw is not None else None
        if start is None:
            first = self._client.get(layout.first_bucket_key)
            if first is None:
                return before
            start = int(first)
        stop = min(before, start + most * layout.bucket_seconds)
        if stop <= start:
            return start
        starts = range(start, stop, layout.bucket_seconds)
        keys = [layout.bucket_key(s, f) for s in starts for f in BucketField]
        pipe = self._client.pipeline(transaction=False)
        for chunk in _chunks(keys, 1000):
            pipe.unlink(*chunk)
        pipe.set(layout.pruned_before_key, stop)
        pipe.execute()
        return stop


def _chunks(items: Sequence[str], size: int) -> list[Sequence[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
