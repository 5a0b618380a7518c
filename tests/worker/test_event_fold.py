"""Folding by event time: buckets from payload timestamps, watermarks, late and future messages."""

from __future__ import annotations

import json
from collections import Counter
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from loginmetrics.window.event_time import EventTimePolicy
from loginmetrics.worker.event_fold import WindowClock, fold_event_batch
from loginmetrics.worker.fold import FoldedBatch
from loginmetrics.worker.validation import ErrorCode
from tests.worker.test_worker_fold import Consumed

NOW = 1_737_421_000.0
POLICY = EventTimePolicy(
    max_delay_seconds=5, allowed_lateness_seconds=60, max_future_seconds=30, idle_after_seconds=10
)


def clock(emitted_end: float | None = None) -> WindowClock:
    window_clock = WindowClock(wall=lambda: NOW)
    window_clock.emitted_end = emitted_end
    return window_clock


def login(user: str, timestamp: float, device: str = "android") -> bytes:
    return json.dumps(
        {
            "user_id": user,
            "app_version": "2.3.0",
            "ip": f"10.0.0.{len(user)}",
            "locale": "TX",
            "device_type": device,
            "timestamp": timestamp,
        }
    ).encode()


def fold(
    records: list[Consumed],
    marks: dict[int, float | None] | None = None,
    window_clock: WindowClock | None = None,
) -> FoldedBatch:
    applied: dict[int, int | None] = {0: None, 1: None}
    return fold_event_batch(
        records,
        applied,
        marks or {},
        policy=POLICY,
        bucket_seconds=1,
        window_clock=window_clock or clock(),
    )


def test_each_message_lands_in_the_bucket_of_its_own_timestamp() -> None:
    folded = fold(
        [
            Consumed(0, 0, login("a", NOW - 100.5)),
            Consumed(0, 1, login("b", NOW - 100.2, "iOS")),
            Consumed(0, 2, login("c", NOW - 3)),
        ]
    )

    assert folded.buckets is not None
    assert sorted(folded.buckets) == [int(NOW) - 101, int(NOW) - 3]
    old = folded.buckets[int(NOW) - 101]
    assert (old.valid, old.users, dict(old.devices)) == (2, {"a", "b"}, {"android": 1, "iOS": 1})
    assert folded.watermarks == {0: NOW - 3 - 5}
    assert (folded.increments.valid, folded.increments.invalid) == (3, 0)


def test_a_message_later_than_the_lateness_is_a_dead_letter_counted_where_the_stream_stands() -> (
    None
):
    folded = fold(
        [
            Consumed(0, 0, login("a", NOW - 10)),
            Consumed(0, 1, login("late", NOW - 10 - 5 - 61)),  # 61 s behind the watermark
            Consumed(0, 2, login("allowed", NOW - 10 - 5 - 59)),
        ]
    )

    assert [r.rejection.code for r in folded.rejected] == [ErrorCode.TOO_LATE]
    assert (
        "1.0 s older than the oldest time a window still takes"
        in folded.rejected[0].rejection.error
    )
    assert folded.rejected[0].rejection.document is not None
    assert folded.buckets is not None
    stands = folded.buckets[int(NOW) - 10]
    assert (stands.valid, stands.invalid) == (1, 1)
    assert folded.buckets[int(NOW) - 74].users == {"allowed"}


def test_a_stored_watermark_judges_the_first_message_of_a_batch() -> None:
    folded = fold([Consumed(1, 0, login("a", NOW - 200))], marks={1: NOW - 100})

    assert [r.rejection.code for r in folded.rejected] == [ErrorCode.TOO_LATE]
    assert folded.watermarks == {1: NOW - 100}  # a rejected message does not move it


def test_a_far_future_timestamp_is_refused_and_does_not_move_the_watermark() -> None:
    folded = fold(
        [Consumed(0, 0, login("a", NOW - 1)), Consumed(0, 1, login("2099", 4_102_444_800))]
    )

    assert [r.rejection.code for r in folded.rejected] == [ErrorCode.FUTURE_TIMESTAMP]
    assert folded.watermarks == {0: NOW - 1 - 5}


def test_a_window_already_emitted_bounds_lateness_for_a_partition_that_was_idle() -> None:
    # Partition 1 was idle since NOW - 1000; windows up to NOW - 20 are emitted meanwhile.
    folded = fold(
        [Consumed(1, 0, login("a", NOW - 900))],
        marks={1: NOW - 1000},
        window_clock=clock(emitted_end=NOW - 20),
    )

    assert [r.rejection.code for r in folded.rejected] == [ErrorCode.TOO_LATE]


def test_an_invalid_message_counts_where_its_partition_stands() -> None:
    folded = fold([Consumed(0, 0, b"not json")], marks={0: NOW - 50})

    assert folded.buckets is not None
    assert list(folded.buckets) == [int(NOW) - 45]
    assert folded.rejected[0].rejection.code is ErrorCode.INVALID_JSON


@st.composite
def shuffled_stream(draw: st.DrawFn) -> list[Consumed]:
    """Two partitions of logins whose timestamps go up with jitter, some invalid."""
    records = []
    for partition in (0, 1):
        moment = NOW - 3600
        for offset in range(draw(st.integers(0, 30))):
            moment += draw(st.floats(0, 3))
            jitter = draw(st.floats(-8, 0))
            value = b"{" if draw(st.integers(0, 9)) == 0 else login(f"u{offset}", moment + jitter)
            records.append(Consumed(partition, offset, value))
    return records


def fold_in_batches(stream: list[Consumed], cuts: list[int]) -> list[FoldedBatch]:
    applied: dict[int, int | None] = {0: None, 1: None}
    marks: dict[int, float | None] = {}
    batches = []
    for start, end in pairwise([0, *sorted(cuts), len(stream)]):
        folded = fold_event_batch(
            stream[start:end], applied, marks, policy=POLICY, bucket_seconds=1, window_clock=clock()
        )
        applied.update(folded.last_offsets)
        marks.update(folded.watermarks)
        batches.append(folded)
    return batches


@settings(max_examples=150)
@given(shuffled_stream(), st.lists(st.integers(0, 60), max_size=6))
def test_a_replay_in_any_batches_puts_every_count_where_one_batch_does(
    stream: list[Consumed], cuts: list[int]
) -> None:
    whole = fold_in_batches(stream, [])
    parts = fold_in_batches(stream, [min(c, len(stream)) for c in cuts])

    def per_bucket(batches: list[FoldedBatch]) -> dict[int, tuple[int, int, frozenset[str]]]:
        valid: Counter[int] = Counter()
        invalid: Counter[int] = Counter()
        users: dict[int, set[str]] = {}
        for b in batches:
            for start, inc in (b.buckets or {}).items():
                valid[start] += inc.valid
                invalid[start] += inc.invalid
                users.setdefault(start, set()).update(inc.users)
        return {s: (valid[s], invalid[s], frozenset(users[s])) for s in users}

    assert per_bucket(parts) == per_bucket(whole)
    assert sum(b.increments.total for b in parts) == len(stream)
    assert [(r.partition, r.offset) for b in parts for r in b.rejected] == [
        (r.partition, r.offset) for b in whole for r in b.rejected
    ]


def test_a_partition_whose_next_message_is_beyond_the_reach_is_held_there() -> None:
    window_clock = WindowClock(wall=lambda: NOW, hold_after=100)
    window_clock.emitted_end = NOW - 1000  # reach: NOW - 900
    folded = fold(
        [
            Consumed(0, 0, login("a", NOW - 950)),
            Consumed(0, 1, b"broken"),
            Consumed(0, 2, login("b", NOW - 850)),  # beyond: held here
            Consumed(0, 3, login("c", NOW - 950)),  # not folded: read again later
            Consumed(1, 0, login("d", NOW - 960)),
        ],
        window_clock=window_clock,
    )

    assert folded.held == {0: (2, NOW - 850)}
    assert folded.last_offsets == {0: 1, 1: 0}
    assert folded.increments.total == 3


def test_a_first_message_older_than_the_retention_is_too_late() -> None:
    folded = fold([Consumed(0, 0, login("1970", 12.0)), Consumed(0, 1, login("a", NOW - 9))])

    assert [r.rejection.code for r in folded.rejected] == [ErrorCode.TOO_LATE]
    assert folded.watermarks == {0: NOW - 9 - 5}
