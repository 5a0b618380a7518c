"""The window algebra on a real Redis: a rolled-up minute or hour holds exactly the union of its
second buckets, however often or in however many pieces it is rolled, and a range read through
the tiers equals the same range read from seconds."""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loginmetrics.window import (
    BucketField,
    RangeOutOfRetentionError,
    RangeReader,
    Rollup,
    Tier,
    WindowLayout,
    WindowReader,
)
from loginmetrics.window.layout import OTHER_VALUES
from loginmetrics.window.read import DISTRIBUTIONS

pytestmark = pytest.mark.integration

HOUR = 3600
# An hour boundary in the past: the rollup never looks at a clock, so any time will do.
BASE = 1_700_000_000 // HOUR * HOUR
EVERYTHING = 10_000  # catch-up limit high enough to roll a whole test's span in one call
ALGEBRA = settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@dataclass(frozen=True)
class Login:
    at: int  # epoch second
    user: int
    ip: int
    device: str
    version: str
    locale: str
    valid: bool


def logins(span: int, values: int, at_least: int = 1) -> st.SearchStrategy[list[Login]]:
    """Logins at seconds ``[0, span)`` (offsets, added to a base later), each distribution
    drawn from ``values`` names so that small bucket caps are exceeded."""
    name = st.integers(0, values - 1).map(str)
    return st.lists(
        st.builds(
            Login,
            at=st.integers(0, span - 1),
            user=st.integers(0, 400),
            ip=st.integers(0, 100),
            device=name,
            version=name,
            locale=name,
            valid=st.sampled_from([True, True, True, False]),
        ),
        min_size=at_least,
        max_size=250,
    )


def shifted(logins: Iterable[Login], base: int) -> list[Login]:
    return [
        Login(base + x.at, x.user, x.ip, x.device, x.version, x.locale, x.valid) for x in logins
    ]


def write_seconds(client: redis.Redis, layout: WindowLayout, logins: Sequence[Login]) -> None:
    """Second buckets as the workers' apply script leaves them: a value new to a full bucket is
    counted under ``__other__``."""
    by_bucket: dict[int, list[Login]] = defaultdict(list)
    for login in logins:
        by_bucket[layout.bucket_start(login.at)].append(login)
    pipe = client.pipeline(transaction=False)
    for start, group in by_bucket.items():
        key = {field: layout.bucket_key(start, field) for field in BucketField}
        valid = [login for login in group if login.valid]
        if valid:
            pipe.pfadd(key[BucketField.USERS], *(f"user-{x.user}" for x in valid))
            pipe.pfadd(key[BucketField.IPS], *(f"10.0.0.{x.ip}" for x in valid))
        for field, names in (
            (BucketField.DEVICES, [x.device for x in valid]),
            (BucketField.VERSIONS, [x.version for x in valid]),
            (BucketField.LOCALES, [x.locale for x in valid]),
        ):
            counts: Counter[str] = Counter()
            for name in names:
                counts[
                    name if name in counts or len(counts) < layout.tracked_values else OTHER_VALUES
                ] += 1
            if counts:
                pipe.zadd(key[field], dict(counts))
        pipe.hset(
            key[BucketField.COUNTS],
            mapping={"valid": len(valid), "invalid": len(group) - len(valid)},
        )
    pipe.execute()


@dataclass(frozen=True)
class Contents:
    """What a set of buckets holds, read with plain Redis commands."""

    users: int
    ips: int
    distributions: dict[BucketField, Counter[str]]
    valid: int
    invalid: int


def contents(client: redis.Redis, keys: list[str]) -> Contents:
    """``keys``: bucket key prefixes ``<prefix>:<tier>:<start>:``."""
    pipe = client.pipeline(transaction=False)
    pipe.pfcount(*(key + "users" for key in keys))
    pipe.pfcount(*(key + "ips" for key in keys))
    for key in keys:
        pipe.hmget(key + "counts", ["valid", "invalid"])
        for field in DISTRIBUTIONS:
            pipe.zrange(key + field.value, 0, -1, withscores=True)
    users, ips, *replies = pipe.execute()
    distributions: dict[BucketField, Counter[str]] = {field: Counter() for field in DISTRIBUTIONS}
    valid = invalid = 0
    per_key = 1 + len(DISTRIBUTIONS)
    for i in range(0, len(replies), per_key):
        counts, *unions = replies[i : i + per_key]
        valid += int(counts[0] or 0)
        invalid += int(counts[1] or 0)
        for field, union in zip(DISTRIBUTIONS, unions, strict=True):
            for member, score in union:
                distributions[field][member.decode()] += int(score)
    return Contents(users, ips, distributions, valid, invalid)


def capped(union: Counter[str], tracked: int) -> Counter[str]:
    """The rollup's cap: the ``tracked`` largest values stay (ties: the greater name), the
    rest goes under ``__other__``."""
    named = sorted(
        ((name, n) for name, n in union.items() if name != OTHER_VALUES),
        key=lambda item: (item[1], item[0]),
    )
    kept = Counter(dict(named[max(0, len(named) - tracked) :]))
    other = sum(union.values()) - sum(kept.values())
    if other:
        kept[OTHER_VALUES] = other
    return kept


def prefix_of(layout: WindowLayout, tier: Tier, start: int) -> str:
    return f"{layout.tier_key_prefix(tier)}{start}:"


def seconds_of(layout: WindowLayout, start: int, end: int) -> list[str]:
    return [prefix_of(layout, Tier.BUCKET, s) for s in range(start, end, layout.bucket_seconds)]


@pytest.fixture
def new_layout(redis_prefix: str) -> Any:
    """A fresh layout under the test's prefix (deleted afterwards) per hypothesis example."""

    def make(**settings: Any) -> WindowLayout:
        settings.setdefault("window_seconds", 3 * HOUR)
        return WindowLayout(prefix=f"{redis_prefix}:{uuid.uuid4().hex[:8]}", **settings)

    return make


@ALGEBRA
@given(
    data=logins(span=4 * 60, values=6, at_least=60),
    tracked=st.sampled_from([3, 1000]),
    bucket_seconds=st.sampled_from([1, 5]),
)
def test_a_rolled_minute_is_the_union_of_its_seconds(
    redis_client: redis.Redis, new_layout: Any, data: list[Login], tracked: int, bucket_seconds: int
) -> None:
    layout = new_layout(tracked_values=tracked, bucket_seconds=bucket_seconds)
    write_seconds(redis_client, layout, shifted(data, BASE))
    Rollup(redis_client, layout, max_minutes=EVERYTHING).roll(BASE + 4 * 60)

    assert Rollup(redis_client, layout).progress(Tier.MINUTE) == BASE + 3 * 60
    for minute in range(BASE, BASE + 4 * 60, 60):
        seconds = contents(redis_client, seconds_of(layout, minute, minute + 60))
        rolled = contents(redis_client, [prefix_of(layout, Tier.MINUTE, minute)])
        assert (rolled.valid, rolled.invalid) == (seconds.valid, seconds.invalid)
        assert (rolled.users, rolled.ips) == (seconds.users, seconds.ips)
        for field in DISTRIBUTIONS:
            assert rolled.distributions[field] == capped(seconds.distributions[field], tracked)
            assert sum(rolled.distributions[field].values()) == rolled.valid


@ALGEBRA
@given(data=logins(span=2 * HOUR, values=6, at_least=60), tracked=st.sampled_from([3, 1000]))
def test_a_rolled_hour_is_the_union_of_its_seconds(
    redis_client: redis.Redis, new_layout: Any, data: list[Login], tracked: int
) -> None:
    layout = new_layout(tracked_values=tracked)
    write_seconds(redis_client, layout, shifted(data, BASE))
    rollup = Rollup(redis_client, layout, max_minutes=EVERYTHING, max_hours=EVERYTHING)
    rollup.roll(BASE + 2 * HOUR)

    assert rollup.progress(Tier.HOUR) == BASE + HOUR
    for hour in (BASE, BASE + HOUR):
        seconds = contents(redis_client, seconds_of(layout, hour, hour + HOUR))
        rolled = contents(redis_client, [prefix_of(layout, Tier.HOUR, hour)])
        assert (rolled.valid, rolled.invalid) == (seconds.valid, seconds.invalid)
        assert (rolled.users, rolled.ips) == (seconds.users, seconds.ips)
        for field in DISTRIBUTIONS:
            union, hourly = seconds.distributions[field], rolled.distributions[field]
            assert sum(hourly.values()) == rolled.valid
            assert len(hourly.keys() - {OTHER_VALUES}) <= tracked
            if len(union.keys() - {OTHER_VALUES}) <= tracked:
                assert hourly == union
            else:  # capped per minute, then per hour: a value kept is never over-counted
                assert all(hourly[name] <= union[name] for name in hourly if name != OTHER_VALUES)


def tier_state(client: redis.Redis, layout: WindowLayout) -> dict[bytes, Any]:
    """Every minute and hour key with its value, and the progress keys."""
    state: dict[bytes, Any] = {}
    for tier in (Tier.MINUTE, Tier.HOUR):
        for key in client.scan_iter(match=layout.tier_key_prefix(tier) + "*", count=1000):
            kind = client.type(key)
            if kind == b"zset":
                state[key] = client.zrange(key, 0, -1, withscores=True)
            elif kind == b"hash":
                state[key] = client.hgetall(key)
            else:
                state[key] = client.get(key)
        state[layout.rolled_key(tier).encode()] = client.get(layout.rolled_key(tier))
    return state


def renamed_state(
    client: redis.Redis, layout: WindowLayout, as_layout: WindowLayout
) -> dict[bytes, Any]:
    """``tier_state`` of ``layout`` with its keys named as ``as_layout``'s."""
    old, new = layout.prefix.encode(), as_layout.prefix.encode()
    return {key.replace(old, new): value for key, value in tier_state(client, layout).items()}


@ALGEBRA
@given(
    data=logins(span=90 * 60, values=6),
    pieces=st.lists(st.integers(1, 40), min_size=1, max_size=6),
)
def test_rolling_again_or_in_pieces_or_after_a_lost_progress_changes_nothing(
    redis_client: redis.Redis, new_layout: Any, data: list[Login], pieces: list[int]
) -> None:
    final_before = BASE + 90 * 60
    at_once, in_pieces = new_layout(tracked_values=3), new_layout(tracked_values=3)
    for layout in (at_once, in_pieces):
        write_seconds(redis_client, layout, shifted(data, BASE))
    Rollup(redis_client, at_once, max_minutes=EVERYTHING, max_hours=EVERYTHING).roll(final_before)
    expected = tier_state(redis_client, at_once)

    # A leader that stops after a few minutes each time (a crash between two script calls)
    for limit in pieces:
        Rollup(redis_client, in_pieces, max_minutes=limit).roll(final_before)
    everything = Rollup(redis_client, in_pieces, max_minutes=EVERYTHING, max_hours=EVERYTHING)
    everything.roll(final_before)
    assert everything.roll(final_before) == 0  # a repeat rolls nothing
    assert renamed_state(redis_client, in_pieces, at_once) == expected

    # Redis losing the progress (a failover) makes the rollup write the same buckets again,
    # whole, never on top of what they hold.
    redis_client.delete(in_pieces.rolled_key(Tier.MINUTE), in_pieces.rolled_key(Tier.HOUR))
    everything.roll(final_before)
    assert renamed_state(redis_client, in_pieces, at_once) == expected


@ALGEBRA
@given(
    data=logins(span=2 * HOUR, values=6),
    ranges=st.lists(
        st.tuples(st.integers(0, 2 * HOUR - 1), st.integers(1, 2 * HOUR)), min_size=1, max_size=5
    ),
)
def test_a_range_read_through_the_tiers_equals_its_read_from_seconds(
    redis_client: redis.Redis, new_layout: Any, data: list[Login], ranges: list[tuple[int, int]]
) -> None:
    layout = new_layout()
    now = int(redis_client.time()[0])
    base = now - 2 * HOUR - 60
    write_seconds(redis_client, layout, shifted(data, base))
    Rollup(redis_client, layout, max_minutes=EVERYTHING, max_hours=EVERYTHING).roll(now - 60)
    reader = RangeReader(redis_client, layout)

    for offset, length in ranges:
        start, end = base + offset, min(base + offset + length, now)
        answer = reader.read(start, end)
        from_seconds = WindowReader(
            redis_client, WindowLayout(prefix=layout.prefix, window_seconds=end - start)
        ).read(end)
        assert not answer.rounded  # every second is kept (window 3 h)
        assert (answer.totals.start, answer.totals.end) == (start, end)
        assert answer.totals.valid == from_seconds.valid
        assert answer.totals.invalid == from_seconds.invalid
        assert answer.totals.active_users == from_seconds.active_users
        assert answer.totals.unique_ips == from_seconds.unique_ips
        assert answer.totals.devices == from_seconds.devices
        assert answer.totals.versions == from_seconds.versions
        assert answer.totals.locales == from_seconds.locales
        assert sum(answer.buckets_read.values()) <= 2 * 59 + 2 * 59 + 2


def test_a_range_whose_seconds_expired_is_rounded_to_the_minute(
    redis_client: redis.Redis, new_layout: Any
) -> None:
    layout = new_layout(window_seconds=60)
    rolled_while_kept = WindowLayout(prefix=layout.prefix, window_seconds=HOUR)
    now = int(redis_client.time()[0])
    minute = now // 60 * 60 - 30 * 60
    write_seconds(
        redis_client,
        layout,
        [Login(minute + s, s, s, "iOS", "2.3.0", "TX", True) for s in range(0, 60, 3)],
    )
    Rollup(redis_client, rolled_while_kept, max_minutes=EVERYTHING).roll(now - 5)
    # Read with a 60 s window, the seconds of that minute are gone (expired, in production).
    answer = RangeReader(redis_client, layout).read(minute + 10, minute + 50)

    assert answer.rounded
    assert (answer.totals.start, answer.totals.end) == (minute, minute + 60)
    assert (answer.requested_start, answer.requested_end) == (minute + 10, minute + 50)
    assert answer.totals.valid == 20
    assert answer.buckets_read == {Tier.BUCKET: 0, Tier.MINUTE: 1, Tier.HOUR: 0}


def test_a_range_past_the_retention_or_in_the_future_is_refused(
    redis_client: redis.Redis, new_layout: Any
) -> None:
    layout = new_layout(window_seconds=300, retention_seconds=HOUR)
    reader = RangeReader(redis_client, layout)
    now = int(redis_client.time()[0])
    with pytest.raises(RangeOutOfRetentionError, match="only the last 3600 s "):
        reader.read(now - HOUR - 120, now - 60)
    with pytest.raises(RangeOutOfRetentionError, match="in the future"):
        reader.read(now - 60, now + 120)
    assert reader.read(now - HOUR + 5, now - 1).totals.valid == 0
