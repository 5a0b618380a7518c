"""Applying a batch (apply_batch.lua on fakeredis): counted once; a zombie writes nothing."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import fakeredis
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loginmetrics.window import (
    BucketField,
    PartitionAdvance,
    WindowConfigError,
    WindowIncrements,
    WindowLayout,
    WindowWriter,
)
from loginmetrics.window.layout import OTHER_VALUES, TRACKED_VALUES

TOPIC = "user-login"
LAYOUT = WindowLayout(prefix="lm-test", bucket_seconds=1, window_seconds=60)


@dataclass
class BucketTotals:
    """What the window holds over some buckets, read with plain Redis commands."""

    users: int
    ips: int
    devices: Counter[str]
    versions: Counter[str]
    locales: Counter[str]
    valid: int
    invalid: int


def read_buckets(
    client: Any, buckets: Iterable[int], layout: WindowLayout = LAYOUT
) -> BucketTotals:
    starts = sorted(set(buckets))

    def keys(field: BucketField) -> list[str]:
        return [layout.bucket_key(start, field) for start in starts]

    def distribution(field: BucketField) -> Counter[str]:
        total: Counter[str] = Counter()
        for key in keys(field):
            for member, score in client.zrange(key, 0, -1, withscores=True):
                total[member.decode()] += int(score)
        return total

    def count(name: str) -> int:
        return sum(int(client.hget(key, name) or 0) for key in keys(BucketField.COUNTS))

    return BucketTotals(
        users=client.pfcount(*keys(BucketField.USERS)),
        ips=client.pfcount(*keys(BucketField.IPS)),
        devices=distribution(BucketField.DEVICES),
        versions=distribution(BucketField.VERSIONS),
        locales=distribution(BucketField.LOCALES),
        valid=count("valid"),
        invalid=count("invalid"),
    )


def snapshot(client: Any) -> dict[bytes, Any]:
    """Every key with its type, value and whether it expires: to prove nothing was written."""
    state: dict[bytes, Any] = {}
    for key in client.keys("*"):
        kind = client.type(key)
        if kind == b"hash":
            value: Any = client.hgetall(key)
        elif kind == b"zset":
            value = client.zrange(key, 0, -1, withscores=True)
        elif kind == b"set":
            value = client.smembers(key)  # fakeredis keeps a HyperLogLog as an exact set
        else:
            value = client.get(key)  # a real Redis keeps it as a string
        state[key] = (kind, value, client.ttl(key) > 0)
    return state


def increments(
    users: Iterable[str] = (),
    ips: Iterable[str] = (),
    devices: dict[str, int] | None = None,
    versions: dict[str, int] | None = None,
    locales: dict[str, int] | None = None,
    invalid: int = 0,
) -> WindowIncrements:
    devices = devices or {}
    return WindowIncrements(
        users=set(users),
        ips=set(ips),
        devices=Counter(devices),
        versions=Counter(versions or {}),
        locales=Counter(locales or {}),
        valid=sum(devices.values()),
        invalid=invalid,
    )


BATCH = increments(
    users=["alice", "bob", "carol"],
    ips=["1.1.1.1", "2.2.2.2"],
    devices={"android": 2, "iOS": 1},
    versions={"2.3.0": 3},
    locales={"TX": 2, "CA": 1},
    invalid=2,
)


@pytest.fixture
def writer(fake_redis: fakeredis.FakeRedis) -> WindowWriter:
    return WindowWriter(fake_redis, LAYOUT, TOPIC)


def test_a_batch_lands_in_the_current_bucket_of_the_redis_clock(
    fake_redis: fakeredis.FakeRedis, writer: WindowWriter
) -> None:
    before = LAYOUT.bucket_start(time.time())
    outcome = writer.apply_batch([PartitionAdvance(0, None, 41)], BATCH)
    after = LAYOUT.bucket_start(time.time())
    assert outcome.applied
    assert outcome.bucket is not None
    assert before <= outcome.bucket <= after
    assert read_buckets(fake_redis, [outcome.bucket]) == BucketTotals(
        users=3,
        ips=2,
        devices=Counter({"android": 2, "iOS": 1}),
        versions=Counter({"2.3.0": 3}),
        locales=Counter({"TX": 2, "CA": 1}),
        valid=3,
        invalid=2,
    )
    device_key = LAYOUT.bucket_key(outcome.bucket, BucketField.DEVICES)
    assert fake_redis.zscore(device_key, "android") == 2
    assert fake_redis.hget(LAYOUT.bucket_key(outcome.bucket, BucketField.COUNTS), "invalid") == b"2"


def test_a_batch_moves_the_applied_offsets_of_its_partitions(writer: WindowWriter) -> None:
    advances = [PartitionAdvance(0, None, 41), PartitionAdvance(2, None, 7)]
    assert writer.apply_batch(advances, BATCH).applied
    assert writer.applied_offsets([0, 1, 2]) == {0: 41, 1: None, 2: 7}


def test_successive_batches_of_the_owner_add_up(
    fake_redis: fakeredis.FakeRedis, writer: WindowWriter
) -> None:
    first = writer.apply_batch([PartitionAdvance(0, None, 9)], BATCH)
    second = writer.apply_batch(
        [PartitionAdvance(0, 9, 19)],
        increments(users=["alice", "dave"], ips=["1.1.1.1"], devices={"iOS": 2}, invalid=1),
    )
    assert first.applied
    assert second.applied
    totals = read_buckets(fake_redis, [first.bucket or 0, second.bucket or 0])
    assert (totals.users, totals.ips) == (4, 2)
    assert totals.devices == Counter({"android": 2, "iOS": 3})
    assert (totals.valid, totals.invalid) == (5, 3)
    assert writer.applied_offsets([0]) == {0: 19}


def test_a_zombie_with_a_stale_offset_writes_nothing(
    fake_redis: fakeredis.FakeRedis, writer: WindowWriter
) -> None:
    # The zombie read offset 9, lost the partition, and its successor applied up to 19.
    assert writer.apply_batch([PartitionAdvance(0, None, 9)], BATCH).applied
    successor = WindowWriter(fake_redis, LAYOUT, TOPIC)
    assert successor.apply_batch([PartitionAdvance(0, 9, 19)], BATCH).applied
    before = snapshot(fake_redis)

    outcome = writer.apply_batch([PartitionAdvance(0, 9, 19)], BATCH)

    assert not outcome.applied
    assert (outcome.conflict_partition, outcome.stored_offset) == (0, 19)
    assert outcome.bucket is None
    assert snapshot(fake_redis) == before
    # The rightful owner carries on from where the window is.
    assert successor.apply_batch([PartitionAdvance(0, 19, 29)], BATCH).applied


def test_one_stale_partition_refuses_the_whole_batch(
    fake_redis: fakeredis.FakeRedis, writer: WindowWriter
) -> None:
    setup = [
        PartitionAdvance(0, None, 100),
        PartitionAdvance(1, None, 200),
        PartitionAdvance(2, None, 300),
    ]
    assert writer.apply_batch(setup, BATCH).applied
    assert writer.apply_batch([PartitionAdvance(1, 200, 250)], BATCH).applied  # someone else
    before = snapshot(fake_redis)

    outcome = writer.apply_batch(
        [
            PartitionAdvance(0, 100, 110),
            PartitionAdvance(1, 200, 210),
            PartitionAdvance(2, 300, 310),
        ],
        BATCH,
    )

    assert not outcome.applied
    assert (outcome.conflict_partition, outcome.stored_offset) == (1, 250)
    assert snapshot(fake_redis) == before
    assert writer.applied_offsets([0, 1, 2]) == {0: 100, 1: 250, 2: 300}


def test_expecting_nothing_stored_fails_once_something_is(
    fake_redis: fakeredis.FakeRedis, writer: WindowWriter
) -> None:
    assert writer.apply_batch([PartitionAdvance(0, None, 5)], BATCH).applied
    before = snapshot(fake_redis)
    outcome = writer.apply_batch([PartitionAdvance(0, None, 6)], BATCH)
    assert (outcome.applied, outcome.conflict_partition, outcome.stored_offset) == (False, 0, 5)
    assert snapshot(fake_redis) == before


def test_expecting_an_offset_where_nothing_is_stored_fails(
    fake_redis: fakeredis.FakeRedis, writer: WindowWriter
) -> None:
    outcome = writer.apply_batch([PartitionAdvance(3, 5, 6)], BATCH)
    assert (outcome.applied, outcome.conflict_partition, outcome.stored_offset) == (False, 3, None)
    assert snapshot(fake_redis) == {}


def test_a_batch_of_only_invalid_messages_counts_them_and_moves_the_offset(
    fake_redis: fakeredis.FakeRedis, writer: WindowWriter
) -> None:
    outcome = writer.apply_batch([PartitionAdvance(0, None, 3)], increments(invalid=4))
    assert outcome.applied
    bucket = outcome.bucket or 0
    assert read_buckets(fake_redis, [bucket]).invalid == 4
    assert read_buckets(fake_redis, [bucket]).valid == 0
    # No empty HyperLogLogs or sorted sets are left behind.
    assert not fake_redis.exists(LAYOUT.bucket_key(bucket, BucketField.USERS))
    assert not fake_redis.exists(LAYOUT.bucket_key(bucket, BucketField.DEVICES))
    assert writer.applied_offsets([0]) == {0: 3}


def test_a_batch_larger_than_luas_unpack_limit_is_applied_whole(
    fake_redis: fakeredis.FakeRedis, writer: WindowWriter
) -> None:
    users = [f"user-{i:05d}" for i in range(20_000)]
    ips = [f"10.{i // 65536}.{i // 256 % 256}.{i % 256}" for i in range(20_000)]
    big = increments(users=users, ips=ips, devices={"android": 20_000})
    outcome = writer.apply_batch([PartitionAdvance(0, None, 19_999)], big)
    assert outcome.applied
    totals = read_buckets(fake_redis, [outcome.bucket or 0])
    # HyperLogLog: standard error 0.81 %
    assert totals.users == pytest.approx(20_000, rel=0.03)
    assert totals.ips == pytest.approx(20_000, rel=0.03)
    assert totals.valid == 20_000


def test_bucket_keys_expire_and_applied_offsets_do_not(
    fake_redis: fakeredis.FakeRedis, writer: WindowWriter
) -> None:
    bucket = writer.apply_batch([PartitionAdvance(0, None, 1)], BATCH).bucket or 0
    for field in BucketField:
        ttl = fake_redis.ttl(LAYOUT.bucket_key(bucket, field))
        assert LAYOUT.window_seconds < ttl <= LAYOUT.ttl_seconds, field
    # An expired applied offset would make the next owner re-apply from Kafka's commit.
    assert fake_redis.ttl(LAYOUT.applied_offsets_key(TOPIC)) == -1


@pytest.mark.parametrize("offset", [2**53 + 1, 2**63 - 1])
def test_offsets_beyond_float_precision_round_trip_exactly(
    fake_redis: fakeredis.FakeRedis, writer: WindowWriter, offset: int
) -> None:
    assert writer.apply_batch([PartitionAdvance(0, None, offset)], BATCH).applied
    assert writer.applied_offsets([0]) == {0: offset}
    # offset - 1 is the same float as offset: only an exact compare tells them apart.
    before = snapshot(fake_redis)
    refused = writer.apply_batch([PartitionAdvance(0, offset - 1, offset + 5)], BATCH)
    assert (refused.applied, refused.stored_offset) == (False, offset)
    assert snapshot(fake_redis) == before
    assert writer.apply_batch([PartitionAdvance(0, offset, offset + 5)], BATCH).applied


def test_writers_of_different_topics_do_not_share_offsets(fake_redis: fakeredis.FakeRedis) -> None:
    logins = WindowWriter(fake_redis, LAYOUT, "user-login")
    other = WindowWriter(fake_redis, LAYOUT, "user-login-eu")
    assert logins.apply_batch([PartitionAdvance(0, None, 50)], BATCH).applied
    assert other.applied_offsets([0]) == {0: None}
    assert other.apply_batch([PartitionAdvance(0, None, 3)], BATCH).applied


def test_no_partitions_asked_no_round_trip(writer: WindowWriter) -> None:
    assert writer.applied_offsets([]) == {}


member_names = st.text(min_size=1, max_size=12)


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sets(member_names, max_size=8),
            st.dictionaries(member_names, st.integers(1, 1000), max_size=5),
            st.integers(0, 50),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_any_names_and_counts_reach_redis_exactly(
    batches: list[tuple[set[str], dict[str, int], int]],
) -> None:
    # Names cross JSON and Lua's cjson on the way: quotes, backslashes, NULs, emoji, "1e5"...
    client = fakeredis.FakeRedis()
    writer = WindowWriter(client, LAYOUT, TOPIC)
    expected_devices: Counter[str] = Counter()
    users: set[str] = set()
    buckets, offset = [], None
    for index, (batch_users, devices, invalid) in enumerate(batches):
        outcome = writer.apply_batch(
            [PartitionAdvance(0, offset, index)],
            increments(users=batch_users, devices=devices, versions=devices, invalid=invalid),
        )
        assert outcome.applied
        buckets.append(outcome.bucket or 0)
        offset = index
        expected_devices.update(devices)
        users |= batch_users
    totals = read_buckets(client, buckets)
    assert totals.devices == expected_devices
    assert totals.versions == expected_devices
    assert totals.valid == sum(expected_devices.values())
    assert totals.invalid == sum(invalid for _, _, invalid in batches)
    assert totals.users == pytest.approx(len(users), rel=0.03)


# -- bounded distributions -------------------------------------------------------------------

# One bucket for the whole test (an hour), and a small number of tracked values.
SMALL = WindowLayout(prefix="lm-small", bucket_seconds=3600, window_seconds=3600, tracked_values=5)


def bucket_distribution(client: Any, layout: WindowLayout, bucket: int) -> dict[str, int]:
    pairs = client.zrange(layout.bucket_key(bucket, BucketField.VERSIONS), 0, -1, withscores=True)
    return {member.decode(): int(score) for member, score in pairs}


def apply_versions(client: Any, layout: WindowLayout, batches: list[dict[str, int]]) -> list[int]:
    writer = WindowWriter(client, layout, TOPIC)
    buckets = []
    for offset, versions in enumerate(batches):
        devices = {"android": sum(versions.values())}
        outcome = writer.apply_batch(
            [PartitionAdvance(0, offset - 1 if offset else None, offset)],
            increments(devices=devices, versions=versions),
        )
        assert outcome.applied
        buckets.append(outcome.bucket or 0)
    return buckets


def test_a_bucket_tracks_a_fixed_number_of_values_and_counts_the_rest_as_other(
    fake_redis: fakeredis.FakeRedis,
) -> None:
    batches = [
        {"a": 3, "b": 1, "c": 2},
        {"d": 1, "a": 1, "e": 4, "f": 7, "g": 1},  # room for two of the four new values
        {"f": 1, "c": 1, "h": 2},  # f and c counted only if tracked; h never is
    ]
    buckets = apply_versions(fake_redis, SMALL, batches)
    assert len(set(buckets)) == 1

    stored = bucket_distribution(fake_redis, SMALL, buckets[0])
    tracked = {name: n for name, n in stored.items() if name != OTHER_VALUES}
    assert len(tracked) == SMALL.tracked_values
    assert {"a", "b", "c"} <= set(tracked)
    assert "h" not in tracked
    truth: Counter[str] = Counter()
    for batch in batches:
        truth.update(batch)
    # Each tracked value is exact; the rest is all under "__other__"; the sum is the valid count.
    assert tracked == {name: truth[name] for name in tracked}
    assert stored[OTHER_VALUES] == sum(truth.values()) - sum(tracked.values())
    assert sum(stored.values()) == read_buckets(fake_redis, buckets, SMALL).valid == 24


def test_with_the_original_generators_values_nothing_is_folded(
    fake_redis: fakeredis.FakeRedis,
) -> None:
    locales = [f"L{i:02d}" for i in range(50)]  # 50 states, 2 device types, 1 version
    batch = increments(
        devices={"android": 30, "iOS": 20},
        versions={"2.3.0": 50},
        locales=dict.fromkeys(locales, 1),
    )
    outcome = WindowWriter(fake_redis, LAYOUT, TOPIC).apply_batch(
        [PartitionAdvance(0, None, 0)], batch
    )
    totals = read_buckets(fake_redis, [outcome.bucket or 0])
    assert totals.locales == Counter(dict.fromkeys(locales, 1))
    assert totals.devices == Counter({"android": 30, "iOS": 20})
    assert OTHER_VALUES not in totals.versions


def test_the_default_bucket_tracks_a_thousand_values() -> None:
    assert WindowLayout().tracked_values == TRACKED_VALUES == 1000
    with pytest.raises(WindowConfigError):
        WindowLayout(tracked_values=0)


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 8),
    st.lists(
        st.dictionaries(
            st.text(alphabet="abcdefghijklmnop", min_size=1, max_size=2),
            st.integers(1, 50),
            max_size=40,
        ),
        min_size=1,
        max_size=5,
    ),
)
def test_bucket_distributions_sum_to_the_valid_count_whatever_the_cardinality(
    tracked: int, batches: list[dict[str, int]]
) -> None:
    layout = WindowLayout(
        prefix="lm-prop", bucket_seconds=3600, window_seconds=3600, tracked_values=tracked
    )
    client = fakeredis.FakeRedis()
    buckets = apply_versions(client, layout, batches)
    truth: dict[int, Counter[str]] = {}
    for bucket, batch in zip(buckets, batches, strict=True):
        truth.setdefault(bucket, Counter()).update(batch)

    for bucket, counts in truth.items():
        stored = bucket_distribution(client, layout, bucket)
        other = stored.pop(OTHER_VALUES, 0)
        assert len(stored) <= tracked  # bounded memory
        assert len(stored) == min(tracked, len(counts))  # no room left unused
        assert stored == {name: counts[name] for name in stored}  # tracked values are exact
        assert other == sum(counts.values()) - sum(stored.values())
        valid = read_buckets(client, [bucket], layout).valid
        assert sum(stored.values()) + other == valid
