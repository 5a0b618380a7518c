"""Any time range read from the tiers: which buckets tile it (a pure plan), then one read."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis

from loginmetrics.window.errors import BadRangeError, RangeOutOfRetentionError
from loginmetrics.window.layout import (
    COUNT_INVALID,
    COUNT_VALID,
    MINUTE_SECONDS,
    BucketField,
    Tier,
    TimeBasis,
    WindowLayout,
)
from loginmetrics.window.read import (
    DISTRIBUTIONS,
    BucketCounts,
    WindowTotals,
    sum_bucket_counts,
    top_distribution,
)
from loginmetrics.window.rollup import parse_start, rolled_until


@dataclass(frozen=True, slots=True)
class TierBucket:
    """One bucket of a plan: its tier and start (epoch second)."""

    tier: Tier
    start: int


@dataclass(frozen=True, slots=True)
class RangePlan:
    """The buckets, oldest first, that tile ``[start, end)`` exactly. ``rounded``: the range
    asked for was widened to these edges, where its own seconds are no longer kept."""

    start: int
    end: int
    buckets: tuple[TierBucket, ...]
    rounded: bool

    def count(self, tier: Tier) -> int:
        return sum(1 for bucket in self.buckets if bucket.tier is tier)


def _utc(epoch_seconds: int) -> str:
    return datetime.fromtimestamp(epoch_seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _floor(value: int, step: int) -> int:
    return value // step * step


def plan_range(
    start: int,
    end: int,
    layout: WindowLayout,
    rolled_minutes_until: int | None,
    rolled_hours_until: int | None,
    oldest_second_kept: int,
) -> RangePlan:
    """The coarsest buckets that tile ``[start, end)``: hours where whole hours fit and are
    rolled up, minutes likewise, second buckets at the edges.

    Minutes before ``rolled_minutes_until`` and hours before ``rolled_hours_until`` are rolled
    up (None: none are); second buckets from ``oldest_second_kept`` on still exist. An edge
    whose minute has seconds that are gone is widened to that minute (``rounded``); an edge
    off the bucket length is widened to the bucket. Where neither tier holds a stretch (a
    rollup that fell behind until its seconds expired) its second buckets are read as they are.
    """
    if start >= end:
        raise BadRangeError(f"a range must end after it starts, got [{start}, {end})")
    step = layout.bucket_seconds
    minutes_until = rolled_minutes_until if layout.has_tiers else None
    hours_until = rolled_hours_until if minutes_until is not None else None
    low, high = _floor(start, step), -(-end // step) * step

    def seconds_gone(at: int) -> bool:
        return minutes_until is not None and at < min(oldest_second_kept, minutes_until)

    if seconds_gone(low):
        low = _floor(low, MINUTE_SECONDS)
    last_minute = _floor(high - 1, MINUTE_SECONDS)
    if high % MINUTE_SECONDS and seconds_gone(max(last_minute, low)):
        high = last_minute + MINUTE_SECONDS
    buckets: list[TierBucket] = []
    at = low
    while at < high:
        tier = Tier.BUCKET
        for coarse, until in ((Tier.HOUR, hours_until), (Tier.MINUTE, minutes_until)):
            length = layout.tier_seconds(coarse)
            if until is not None and at % length == 0 and at + length <= min(high, until):
                tier = coarse
                break
        buckets.append(TierBucket(tier, at))
        at += layout.tier_seconds(tier)
    return RangePlan(low, high, tuple(buckets), rounded=(low, high) != (start, end))


@dataclass(frozen=True, slots=True)
class RangeAnswer:
    """The totals of a range (``totals.start``/``end``: the range read), and what was asked."""

    totals: WindowTotals
    requested_start: int
    requested_end: int
    rounded: bool
    buckets_read: dict[Tier, int]


class RangeReader:
    """Reads any range within the retention: ``query``'s and the HTTP API's side of the tiers."""

    def __init__(
        self, client: redis.Redis, layout: WindowLayout, max_values: int | None = None
    ) -> None:
        """``max_values``: most values read per distribution (default: as many as a bucket
        tracks); the others are summed under ``OTHER_VALUES``."""
        self._client = client
        self._layout = layout
        self._max_values = layout.tracked_values if max_values is None else max_values

    def server_time(self) -> int:
        seconds, _micros = self._client.time()
        return int(seconds)

    def plan(self, start: int, end: int) -> RangePlan:
        """Which buckets ``read`` would read now; RangeOutOfRetentionError when the range starts
        before the retention (or, without tiers, before the window) or ends in the future."""
        if start >= end:
            raise BadRangeError(f"a range must end after it starts, got [{start}, {end})")
        layout = self._layout
        pipe = self._client.pipeline(transaction=False)
        pipe.time()
        pipe.get(layout.rolled_key(Tier.MINUTE))
        pipe.get(layout.rolled_key(Tier.HOUR))
        pipe.get(layout.pruned_before_key)
        (now, _micros), minute, hour, pruned = pipe.execute()
        present = layout.bucket_start(int(now)) + layout.bucket_seconds
        if end > present:
            raise RangeOutOfRetentionError(
                f"the range ends at {_utc(end)}, {end - int(now)} s in the future (Redis clock)"
            )
        # A second bucket lives --window plus grace after its last write: every one since this
        # is still there (and in event time none before the aggregator's pruning point).
        oldest_second = layout.bucket_start(int(now)) - layout.window_seconds
        if layout.time_basis is TimeBasis.EVENT:
            # In event time a second bucket stays until the aggregator prunes it, however old.
            oldest_second = 0
        if pruned is not None:
            oldest_second = max(oldest_second, int(pruned))
        kept = layout.retention_seconds if layout.has_tiers else layout.window_seconds
        if start < int(now) - kept:
            raise RangeOutOfRetentionError(
                f"the range starts at {_utc(start)}, {int(now) - start} s ago: only the last "
                f"{kept} s (since {_utc(int(now) - kept)}) are kept"
                + (
                    ""
                    if layout.has_tiers
                    else " (--bucket-seconds does "
                    "not divide a minute, so nothing is rolled up past --window)"
                )
            )
        return plan_range(
            start,
            end,
            layout,
            rolled_until(layout, Tier.MINUTE, parse_start(minute)),
            rolled_until(layout, Tier.HOUR, parse_start(hour)),
            oldest_second,
        )

    def read(self, start: int, end: int) -> RangeAnswer:
        """Totals of ``[start, end)`` (epoch seconds): a small round trip for the clock and the
        rollup's progress, then every bucket of the plan in one MULTI/EXEC snapshot."""
        plan = self.plan(start, end)
        return RangeAnswer(
            totals=self._read_plan(plan),
            requested_start=start,
            requested_end=end,
            rounded=plan.rounded,
            buckets_read={tier: plan.count(tier) for tier in Tier},
        )

    def _read_plan(self, plan: RangePlan) -> WindowTotals:
        layout = self._layout

        def keys(field: BucketField) -> list[str]:
            return [layout.tier_key(b.tier, b.start, field) for b in plan.buckets]

        pipe = self._client.pipeline(transaction=True)
        pipe.pfcount(*keys(BucketField.USERS))
        pipe.pfcount(*keys(BucketField.IPS))
        for distribution in DISTRIBUTIONS:
            union = layout.union_key(distribution)
            pipe.zunionstore(union, keys(distribution))
            pipe.zrevrange(union, 0, self._max_values, withscores=True)
            pipe.delete(union)
        for key in keys(BucketField.COUNTS):
            pipe.hmget(key, [COUNT_VALID, COUNT_INVALID])
        users, ips, *replies = pipe.execute()
        unions, counts = replies[: 3 * len(DISTRIBUTIONS)], replies[3 * len(DISTRIBUTIONS) :]
        valid, invalid, first_active = sum_bucket_counts(_bucket_counts(plan.buckets, counts))
        devices, versions, locales = (
            top_distribution(unions[i + 1], int(unions[i]), valid, self._max_values)
            for i in range(0, len(unions), 3)
        )
        return WindowTotals(
            start=plan.start,
            end=plan.end,
            valid=valid,
            invalid=invalid,
            active_users=int(users),
            unique_ips=int(ips),
            devices=devices,
            versions=versions,
            locales=locales,
            first_active_bucket=first_active,
        )


def _bucket_counts(
    buckets: Sequence[TierBucket], replies: Sequence[Sequence[Any]]
) -> list[BucketCounts]:
    return [
        BucketCounts(bucket.start, int(valid or 0), int(invalid or 0))
        for bucket, (valid, invalid) in zip(buckets, replies, strict=True)
    ]
