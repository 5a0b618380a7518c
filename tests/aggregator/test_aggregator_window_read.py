"""WindowReader.read over many buckets, some of them outside the window, against fakeredis."""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field

import fakeredis
from hypothesis import given, settings
from hypothesis import strategies as st

from loginmetrics.window import BucketField, WindowLayout, WindowReader
from loginmetrics.window.layout import COUNT_INVALID, COUNT_VALID

END = 1_000


@dataclass
class BucketWrite:
    users: list[str] = field(default_factory=list)
    ips: list[str] = field(default_factory=list)
    devices: dict[str, int] = field(default_factory=dict)
    locales: dict[str, int] = field(default_factory=dict)
    valid: int = 0
    invalid: int = 0


def write_bucket(
    client: fakeredis.FakeRedis, layout: WindowLayout, start: int, b: BucketWrite
) -> None:
    """What the apply script writes into one bucket, written directly to pick the bucket."""
    if b.users:
        client.pfadd(layout.bucket_key(start, BucketField.USERS), *b.users)
    if b.ips:
        client.pfadd(layout.bucket_key(start, BucketField.IPS), *b.ips)
    for name, n in b.devices.items():
        client.zincrby(layout.bucket_key(start, BucketField.DEVICES), n, name)
        client.zincrby(layout.bucket_key(start, BucketField.VERSIONS), n, "2.3.0")
    for name, n in b.locales.items():
        client.zincrby(layout.bucket_key(start, BucketField.LOCALES), n, name)
    counts = layout.bucket_key(start, BucketField.COUNTS)
    client.hincrby(counts, COUNT_VALID, b.valid)
    client.hincrby(counts, COUNT_INVALID, b.invalid)


def test_read_sums_only_the_buckets_inside_the_window(fake_redis: fakeredis.FakeRedis) -> None:
    layout = WindowLayout(prefix="read-test", bucket_seconds=2, window_seconds=10)
    # The window ending at 1000 holds the buckets 990, 992, ..., 998.
    writes = {
        988: BucketWrite(["old"], ["9.9.9.9"], {"android": 4}, {"NY": 4}, valid=4, invalid=9),
        990: BucketWrite(["u1", "u2"], ["1.1.1.1"], {"android": 2}, {"TX": 2}, valid=2),
        994: BucketWrite(
            ["u2", "u3"], ["1.1.1.1", "2.2.2.2"], {"iOS": 3}, {"TX": 1, "OH": 2}, valid=3, invalid=1
        ),
        998: BucketWrite(
            ["u4"], ["3.3.3.3"], {"android": 1, "iOS": 1}, {"CA": 2}, valid=2, invalid=2
        ),
        1000: BucketWrite(["new"], ["8.8.8.8"], {"iOS": 7}, {"NY": 7}, valid=7, invalid=3),
    }
    for start, bucket in writes.items():
        write_bucket(fake_redis, layout, start, bucket)

    totals = WindowReader(fake_redis, layout).read(END)

    assert (totals.start, totals.end) == (990, 1000)
    assert totals.valid == 7
    assert totals.invalid == 3
    assert totals.total_messages == 10
    assert totals.active_users == 4  # u1..u4; "old" and "new" are outside
    assert totals.unique_ips == 3
    assert totals.devices == {"android": 3, "iOS": 4}
    assert totals.versions == {"2.3.0": 7}
    assert totals.locales == {"TX": 3, "OH": 2, "CA": 2}
    assert totals.first_active_bucket == 990


def test_a_window_with_no_buckets_reads_as_zeros(fake_redis: fakeredis.FakeRedis) -> None:
    layout = WindowLayout(prefix="read-test", window_seconds=300)

    totals = WindowReader(fake_redis, layout).read(END)

    assert totals.total_messages == totals.active_users == totals.unique_ips == 0
    assert totals.devices == totals.versions == totals.locales == {}
    assert totals.first_active_bucket is None


bucket_writes = st.dictionaries(
    st.integers(min_value=-5, max_value=24),  # bucket index; the window holds 0..19
    st.tuples(
        st.lists(st.sampled_from([f"user-{i}" for i in range(30)]), max_size=8),
        st.dictionaries(st.sampled_from(["android", "iOS", "web"]), st.integers(1, 50)),
        st.integers(min_value=0, max_value=20),
    ),
    max_size=30,
)


@settings(max_examples=40, deadline=None)
@given(bucket_writes)
def test_window_totals_are_the_sum_of_their_buckets(
    writes: dict[int, tuple[list[str], dict[str, int], int]],
) -> None:
    layout = WindowLayout(prefix=f"prop-{uuid.uuid4().hex}", bucket_seconds=1, window_seconds=20)
    end = END + 20
    users: set[str] = set()
    devices: Counter[str] = Counter()
    invalid = 0
    first_active: int | None = None
    client = fakeredis.FakeRedis()
    for index, (bucket_users, bucket_devices, bucket_invalid) in writes.items():
        start = END + index
        valid = sum(bucket_devices.values())
        write_bucket(
            client,
            layout,
            start,
            BucketWrite(bucket_users, [], bucket_devices, {}, valid=valid, invalid=bucket_invalid),
        )
        if 0 <= index < 20:
            users.update(bucket_users)
            devices.update(bucket_devices)
            invalid += bucket_invalid
            if valid + bucket_invalid and (first_active is None or start < first_active):
                first_active = start

    totals = WindowReader(client, layout).read(end)
    client.close()

    assert totals.active_users == len(users)
    assert totals.devices == dict(devices)
    assert totals.valid == sum(devices.values())
    assert totals.invalid == invalid
    assert totals.first_active_bucket == first_active
