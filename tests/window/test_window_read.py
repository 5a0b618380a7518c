"""Reading a window on fakeredis: exactly the buckets of [end - window, end), summed."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from typing import Any

import fakeredis
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loginmetrics.window import (
    BucketField,
    PartitionAdvance,
    WindowIncrements,
    WindowLayout,
    WindowReader,
    WindowTotals,
    WindowWriter,
)
from loginmetrics.window.layout import OTHER_VALUES
from loginmetrics.window.read import top_distribution

LAYOUT = WindowLayout(prefix="lm-test", bucket_seconds=5, window_seconds=30)
END = 1_736_654_000  # a bucket boundary
START = END - LAYOUT.window_seconds


def write_bucket(
    client: Any,
    start: int,
    users: Iterable[str] = (),
    ips: Iterable[str] = (),
    devices: dict[str, int] | None = None,
    versions: dict[str, int] | None = None,
    locales: dict[str, int] | None = None,
    valid: int = 0,
    invalid: int = 0,
    layout: WindowLayout = LAYOUT,
) -> None:
    """Write one bucket by hand, with the commands the apply script uses."""
    users, ips = list(users), list(ips)
    if users:
        client.pfadd(layout.bucket_key(start, BucketField.USERS), *users)
    if ips:
        client.pfadd(layout.bucket_key(start, BucketField.IPS), *ips)
    for field, counts in (
        (BucketField.DEVICES, devices),
        (BucketField.VERSIONS, versions),
        (BucketField.LOCALES, locales),
    ):
        for name, n in (counts or {}).items():
            client.zincrby(layout.bucket_key(start, field), n, name)
    counts_key = layout.bucket_key(start, BucketField.COUNTS)
    if valid:
        client.hincrby(counts_key, "valid", valid)
    if invalid:
        client.hincrby(counts_key, "invalid", invalid)


def login_bucket(client: Any, start: int, user: str, n: int = 1, invalid: int = 0) -> None:
    write_bucket(
        client,
        start,
        users=[user],
        ips=[f"ip-{user}"],
        devices={"android": n},
        versions={"2.3.0": n},
        locales={"TX": n},
        valid=n,
        invalid=invalid,
    )


@pytest.fixture(params=[False, True], ids=["bytes", "decoded"])
def client(request: pytest.FixtureRequest) -> Any:
    """A fakeredis client answering bytes, or str as with decode_responses=True."""
    fake = fakeredis.FakeRedis(decode_responses=request.param)
    yield fake
    fake.close()


@pytest.fixture
def reader(client: Any) -> WindowReader:
    return WindowReader(client, LAYOUT)


def test_only_the_buckets_of_the_window_count(client: Any, reader: WindowReader) -> None:
    bucket = LAYOUT.bucket_seconds
    login_bucket(client, START - 2 * bucket, "too-old", n=100, invalid=100)
    login_bucket(client, START - bucket, "just-before", n=100, invalid=100)
    write_bucket(
        client,
        START,
        users=["alice", "bob"],
        ips=["1.1.1.1"],
        devices={"android": 2, "iOS": 1},
        versions={"2.3.0": 3},
        locales={"TX": 1, "CA": 2},
        valid=3,
        invalid=1,
    )
    write_bucket(
        client,
        END - bucket,
        users=["alice", "carol"],
        ips=["1.1.1.1", "2.2.2.2"],
        devices={"iOS": 2},
        versions={"2.4.0": 2},
        locales={"TX": 2},
        valid=2,
        invalid=4,
    )
    login_bucket(client, END, "at-the-end", n=100, invalid=100)
    login_bucket(client, END + bucket, "later", n=100, invalid=100)

    assert reader.read(END) == WindowTotals(
        start=START,
        end=END,
        valid=5,
        invalid=5,
        active_users=3,
        unique_ips=2,
        devices={"android": 2, "iOS": 3},
        versions={"2.3.0": 3, "2.4.0": 2},
        locales={"TX": 3, "CA": 2},
        first_active_bucket=START,
    )
    assert reader.read(END).total_messages == 10


def test_an_empty_window_reads_as_zeros(reader: WindowReader) -> None:
    assert reader.read(END) == WindowTotals(
        start=START,
        end=END,
        valid=0,
        invalid=0,
        active_users=0,
        unique_ips=0,
        devices={},
        versions={},
        locales={},
        first_active_bucket=None,
    )


def test_first_active_bucket_is_the_oldest_bucket_with_any_message(
    client: Any, reader: WindowReader
) -> None:
    write_bucket(client, START + 10, invalid=1)  # invalid messages are messages too
    login_bucket(client, START + 20, "alice")
    assert reader.read(END).first_active_bucket == START + 10


def test_a_window_slides_one_bucket_at_a_time(client: Any, reader: WindowReader) -> None:
    bucket = LAYOUT.bucket_seconds
    for index, start in enumerate(range(START - 30, END + 30, bucket)):
        login_bucket(client, start, f"user-{index}", n=index + 1)
    for end in range(END - 20, END + 30, bucket):
        totals = reader.read(end)
        inside = range(
            (end - LAYOUT.window_seconds - (START - 30)) // bucket, (end - (START - 30)) // bucket
        )
        assert totals.valid == sum(i + 1 for i in inside)
        assert totals.active_users == len(inside)
        assert totals.devices == {"android": totals.valid}


def test_a_window_end_off_a_boundary_is_refused(reader: WindowReader) -> None:
    with pytest.raises(ValueError, match="boundary"):
        reader.read(END + 1)


def test_the_last_complete_window_ends_at_the_current_bucket_of_the_redis_clock(
    reader: WindowReader,
) -> None:
    before = time.time()
    server = reader.server_time()
    end = reader.last_complete_window_end()
    assert abs(server - before) < 5
    assert end % LAYOUT.bucket_seconds == 0
    assert end <= reader.server_time() < end + LAYOUT.bucket_seconds + 1


def test_what_a_worker_applies_is_what_the_reader_reads(client: Any, reader: WindowReader) -> None:
    writer = WindowWriter(client, LAYOUT, "user-login")
    batch = WindowIncrements(
        users={"alice", "bob"},
        ips={"1.1.1.1"},
        devices=Counter({"iOS": 2}),
        versions=Counter({"2.3.0": 2}),
        locales=Counter({"CA": 2}),
        valid=2,
        invalid=1,
    )
    outcome = writer.apply_batch([PartitionAdvance(0, None, 2)], batch)
    assert outcome.bucket is not None
    totals = reader.read(outcome.bucket + LAYOUT.bucket_seconds)
    assert (totals.valid, totals.invalid, totals.active_users, totals.unique_ips) == (2, 1, 2, 1)
    assert (totals.devices, totals.versions, totals.locales) == (
        {"iOS": 2},
        {"2.3.0": 2},
        {"CA": 2},
    )
    assert totals.first_active_bucket == outcome.bucket
    # The bucket being written is not part of the window that ends at its start.
    assert reader.read(outcome.bucket).total_messages == 0


# -- the window algebra: a window is the sum of its buckets ------------------------------------

USERS = [f"user-{i}" for i in range(12)]
bucket_contents = st.fixed_dictionaries(
    {
        "users": st.sets(st.sampled_from(USERS), max_size=5),
        "devices": st.dictionaries(
            st.sampled_from(["android", "iOS", "web"]), st.integers(1, 50), max_size=3
        ),
        "locales": st.dictionaries(
            st.sampled_from(["TX", "CA", "NY", "LA"]), st.integers(1, 50), max_size=4
        ),
        "invalid": st.integers(0, 20),
    }
)


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(st.integers(-10, 15), bucket_contents, max_size=12),
    st.integers(-4, 10),
)
def test_a_window_is_the_sum_of_the_buckets_inside_it(
    buckets: dict[int, dict[str, Any]], end_index: int
) -> None:
    client = fakeredis.FakeRedis()
    bucket = LAYOUT.bucket_seconds
    for index, content in buckets.items():
        write_bucket(
            client,
            START + index * bucket,
            users=content["users"],
            ips=content["users"],
            devices=content["devices"],
            locales=content["locales"],
            valid=sum(content["devices"].values()),
            invalid=content["invalid"],
        )
    end = START + end_index * bucket
    inside = {
        index: content
        for index, content in buckets.items()
        if end - LAYOUT.window_seconds <= START + index * bucket < end
    }

    totals = WindowReader(client, LAYOUT).read(end)

    devices: Counter[str] = Counter()
    locales: Counter[str] = Counter()
    for content in inside.values():
        devices.update(content["devices"])
        locales.update(content["locales"])
    assert totals.devices == dict(devices)
    assert totals.locales == dict(locales)
    assert totals.valid == sum(devices.values()) == sum(totals.devices.values())
    assert totals.invalid == sum(c["invalid"] for c in inside.values())
    distinct = set().union(*(c["users"] for c in inside.values()))
    assert totals.active_users == len(distinct)  # exact at these cardinalities
    assert totals.unique_ips == len(distinct)
    active = [i for i, c in inside.items() if c["devices"] or c["invalid"]]
    assert totals.first_active_bucket == (START + min(active) * bucket if active else None)


# -- bounded distributions ---------------------------------------------------------------------


def test_a_read_lists_the_largest_values_and_sums_the_rest_as_other(client: Any) -> None:
    write_bucket(client, START, versions={"a": 9, "b": 1, "c": 4}, devices={"x": 14}, valid=14)
    write_bucket(
        client,
        START + LAYOUT.bucket_seconds,
        versions={"b": 2, "d": 5, OTHER_VALUES: 7},  # "__other__" written by a full bucket
        devices={"x": 14},
        valid=14,
    )

    totals = WindowReader(client, LAYOUT, max_values=2).read(END)

    assert totals.versions == {"a": 9, "d": 5, OTHER_VALUES: 14}  # b 3, c 4 and 7 folded
    assert sum(totals.versions.values()) == totals.valid == 28
    assert totals.devices == {"x": 28}  # few values: exact, no "__other__"


def test_a_read_of_few_values_keeps_the_other_a_bucket_counted(client: Any) -> None:
    write_bucket(client, START, versions={"a": 2, OTHER_VALUES: 3}, devices={"x": 5}, valid=5)
    assert WindowReader(client, LAYOUT, max_values=2).read(END).versions == {
        "a": 2,
        OTHER_VALUES: 3,
    }


def test_the_read_leaves_no_scratch_key_behind(client: Any) -> None:
    write_bucket(client, START, versions={"a": 2, "b": 1}, devices={"x": 3}, valid=3)
    before = set(client.keys("*"))
    WindowReader(client, LAYOUT, max_values=1).read(END)
    assert set(client.keys("*")) == before


def test_top_distribution_is_whole_when_every_value_was_read() -> None:
    assert top_distribution([(b"a", 3.0), (b"b", 1.0)], 2, 4, max_values=2) == {"a": 3, "b": 1}
    assert top_distribution([("a", 3.0), (OTHER_VALUES, 2.0), ("b", 1.0)], 5, 9, 2) == {
        "a": 3,
        "b": 1,
        OTHER_VALUES: 5,
    }


def test_top_distribution_lists_no_more_than_max_values_when_one_more_was_read() -> None:
    # The read asks for max_values + 1 (in case the sum of the rest is among them): a window
    # of exactly that many values must still list only max_values of them.
    assert top_distribution([("aa", 1.0), ("a", 1.0)], 2, 2, max_values=1) == {
        "aa": 1,
        OTHER_VALUES: 1,
    }
    assert top_distribution([("a", 3.0), (OTHER_VALUES, 2.0)], 2, 5, max_values=1) == {
        "a": 3,
        OTHER_VALUES: 2,
    }


versions_of_a_bucket = st.dictionaries(
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=3),
    st.integers(1, 30),
    max_size=60,
)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(versions_of_a_bucket, min_size=1, max_size=6),
    st.integers(1, 10),
    st.integers(1, 12),
)
def test_every_distribution_sums_to_window_size_whatever_the_cardinality(
    buckets: list[dict[str, int]], tracked: int, max_values: int
) -> None:
    layout = WindowLayout(
        prefix="lm-card", bucket_seconds=5, window_seconds=30, tracked_values=tracked
    )
    client = fakeredis.FakeRedis()
    writer = WindowWriter(client, layout, "user-login")
    applied = []
    for offset, versions in enumerate(buckets):
        valid = sum(versions.values())
        batch = WindowIncrements(
            devices=Counter({"android": valid}), versions=Counter(versions), valid=valid
        )
        outcome = writer.apply_batch(
            [PartitionAdvance(0, offset - 1 if offset else None, offset)], batch
        )
        assert outcome.bucket is not None
        applied.append(outcome.bucket)
    truth: Counter[str] = Counter()
    for versions in buckets:
        truth.update(versions)

    totals = WindowReader(client, layout, max_values=max_values).read(
        max(applied) + layout.bucket_seconds
    )

    assert totals.valid == sum(truth.values())
    assert sum(totals.versions.values()) == totals.valid
    assert sum(totals.devices.values()) == totals.valid
    listed = {name: n for name, n in totals.versions.items() if name != OTHER_VALUES}
    assert len(listed) <= max_values
    assert all(n <= truth[name] for name, n in listed.items())  # a value is never over-counted
    if len(truth) <= tracked and len(truth) <= max_values:
        assert totals.versions == dict(truth)  # few values: exact
