"""Folding a poll batch: exact increments, offset ranges, and what is skipped or dead-lettered."""

from __future__ import annotations

import json
from collections import Counter
from itertools import pairwise
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from loginmetrics.worker.fold import FoldedBatch, fold_batch
from loginmetrics.worker.validation import ErrorCode, LoginEvent, Rejection, validate

SECOND_MS = 1_737_421_077_000


class Consumed:
    """A consumed Kafka record as plain data, shaped like confluent_kafka.Message."""

    __slots__ = ("_error", "_offset", "_partition", "_timestamp", "_value")

    def __init__(
        self,
        partition: int | None,
        offset: int | None,
        value: bytes | None,
        timestamp: tuple[int, int] = (1, SECOND_MS),
        error: Any = None,
    ) -> None:
        self._partition = partition
        self._offset = offset
        self._value = value
        self._timestamp = timestamp
        self._error = error

    def error(self) -> Any:
        return self._error

    def partition(self) -> int | None:
        return self._partition

    def offset(self) -> int | None:
        return self._offset

    def value(self) -> bytes | None:
        return self._value

    def timestamp(self) -> tuple[int, int]:
        return self._timestamp

    def __repr__(self) -> str:
        return f"Consumed(p={self._partition}, o={self._offset}, {self._value!r})"


def login(
    user: str,
    ip: str = "10.0.0.1",
    device: str = "android",
    version: str = "2.3.0",
    locale: str = "TX",
) -> bytes:
    return json.dumps(
        {
            "user_id": user,
            "app_version": version,
            "ip": ip,
            "locale": locale,
            "device_id": "d",
            "timestamp": 1736653976,
            "device_type": device,
        }
    ).encode()


MISSING_DEVICE = (
    b'{"user_id": "u9", "app_version": "2.3.0", "ip": "1.1.1.1", "locale": "NY", "timestamp": 1}'
)


def test_a_batch_folds_into_exact_increments() -> None:
    records = [
        Consumed(0, 0, login("alice", "1.1.1.1", "android", "2.3.0", "TX")),
        Consumed(0, 1, login("bob", "1.1.1.1", "iOS", "2.3.0", "CA")),
        Consumed(1, 0, login("alice", "2.2.2.2", "android", "2.4.0", "TX")),
        Consumed(1, 1, b"not json"),
        Consumed(0, 2, login("carol", "3.3.3.3", "iOS", "2.3.0", "TX")),
        Consumed(1, 2, MISSING_DEVICE),
    ]
    increments = fold_batch(records, {0: None, 1: None}).increments
    assert increments.users == {"alice", "bob", "carol"}
    assert increments.ips == {"1.1.1.1", "2.2.2.2", "3.3.3.3"}
    assert increments.devices == Counter({"android": 2, "iOS": 2})
    assert increments.versions == Counter({"2.3.0": 3, "2.4.0": 1})
    assert increments.locales == Counter({"TX": 3, "CA": 1})
    assert (increments.valid, increments.invalid, increments.total) == (4, 2, 6)


def test_invalid_messages_never_reach_the_distributions() -> None:
    records = [Consumed(0, 0, MISSING_DEVICE), Consumed(0, 1, login("", "1.1.1.1"))]
    increments = fold_batch(records, {0: None}).increments
    assert increments.users == set()
    assert increments.ips == set()
    assert increments.devices == Counter()
    assert increments.locales == Counter()
    assert (increments.valid, increments.invalid) == (0, 2)


def test_first_and_last_offsets_are_kept_per_partition() -> None:
    records = [
        Consumed(2, 40, login("a")),
        Consumed(5, 7, b"bad"),
        Consumed(2, 41, login("b")),
        Consumed(2, 45, login("c")),  # gaps are normal on compacted or transactional topics
        Consumed(5, 8, login("d")),
    ]
    folded = fold_batch(records, {2: 39, 5: None})
    assert folded.first_offsets == {2: 40, 5: 7}
    assert folded.last_offsets == {2: 45, 5: 8}


def test_records_of_partitions_this_worker_does_not_own_are_skipped() -> None:
    records = [
        Consumed(0, 0, login("mine")),
        Consumed(3, 0, login("theirs")),
        Consumed(3, 1, b"bad, but not ours to dead-letter"),
    ]
    folded = fold_batch(records, {0: None})
    assert folded.increments.users == {"mine"}
    assert folded.increments.total == 1
    assert folded.rejected == []
    assert 3 not in folded.last_offsets
    assert 3 not in folded.first_offsets
    assert folded.skipped == 2


def test_records_at_or_below_the_applied_offset_are_skipped() -> None:
    # A prefetch from before a seek re-delivers messages whose effect is already in the window.
    records = [Consumed(0, offset, login(f"user-{offset}")) for offset in range(8, 14)]
    records.append(Consumed(0, 10, b"stale and bad"))
    folded = fold_batch(records, {0: 10})
    assert folded.increments.users == {"user-11", "user-12", "user-13"}
    assert folded.increments.invalid == 0
    assert folded.first_offsets == {0: 11}
    assert folded.last_offsets == {0: 13}
    assert folded.skipped == 4


def test_with_nothing_applied_yet_offset_zero_is_folded() -> None:
    folded = fold_batch([Consumed(0, 0, login("first"))], {0: None})
    assert folded.increments.users == {"first"}
    assert folded.first_offsets == {0: 0}


def test_kafka_error_records_are_collected_and_not_counted() -> None:
    partition_eof = object()
    records = [
        Consumed(None, None, None, error=partition_eof),
        Consumed(0, 5, login("a")),
        Consumed(0, None, b"broker says no", error="_TRANSPORT"),
    ]
    folded = fold_batch(records, {0: None})
    assert folded.kafka_errors == [partition_eof, "_TRANSPORT"]
    assert folded.increments.total == 1
    assert folded.rejected == []
    assert folded.last_offsets == {0: 5}


def test_rejected_records_say_where_they_came_from_and_why() -> None:
    records = [
        Consumed(3, 18211, MISSING_DEVICE, timestamp=(1, SECOND_MS)),
        Consumed(3, 18212, None, timestamp=(2, SECOND_MS + 5)),  # log-append time
        Consumed(4, 9, b"\xff", timestamp=(0, -1)),  # no timestamp available
    ]
    folded = fold_batch(records, {3: 18210, 4: 8})
    first, tombstone, garbage = folded.rejected
    assert (first.partition, first.offset, first.timestamp_ms) == (3, 18211, SECOND_MS)
    assert first.value == MISSING_DEVICE
    assert first.rejection.code is ErrorCode.MISSING_FIELDS
    assert first.rejection.error == "Missing required fields: ['device_type']"
    assert (tombstone.offset, tombstone.timestamp_ms, tombstone.value) == (
        18212,
        SECOND_MS + 5,
        None,
    )
    assert tombstone.rejection.code is ErrorCode.NOT_AN_OBJECT
    assert (garbage.partition, garbage.offset, garbage.timestamp_ms) == (4, 9, None)
    assert garbage.rejection.code is ErrorCode.INVALID_ENCODING
    assert folded.increments.invalid == 3


def test_the_size_limit_is_passed_on_to_validation() -> None:
    value = login("someone")
    folded = fold_batch([Consumed(0, 0, value)], {0: None}, max_bytes=len(value) - 1)
    assert folded.increments.valid == 0
    assert [r.rejection.code for r in folded.rejected] == [ErrorCode.TOO_LARGE]


def test_an_empty_batch_folds_to_nothing() -> None:
    folded = fold_batch([], {0: None})
    assert folded.increments.total == 0
    assert folded.last_offsets == {}
    assert folded.rejected == []


# -- the fold algebra ------------------------------------------------------------------------

USERS = [f"user-{i}" for i in range(6)]
payloads = st.one_of(
    st.builds(
        login,
        st.sampled_from(USERS),
        st.sampled_from(["1.1.1.1", "2.2.2.2", "3.3.3.3"]),
        st.sampled_from(["android", "iOS"]),
        st.sampled_from(["2.3.0", "2.4.0"]),
        st.sampled_from(["TX", "CA", "NY"]),
    ),
    st.sampled_from([b"not json", b"[]", MISSING_DEVICE, b"\xff", None]),
)


@st.composite
def streams(draw: st.DrawFn) -> list[Consumed]:
    """Records of up to three partitions, offsets increasing per partition."""
    next_offset = {p: draw(st.integers(0, 1000)) for p in range(3)}
    records = []
    for value in draw(st.lists(payloads, max_size=40)):
        partition = draw(st.integers(0, 2))
        records.append(Consumed(partition, next_offset[partition], value))
        next_offset[partition] += draw(st.integers(1, 3))
    return records


def fold_in_batches(
    stream: list[Consumed], cuts: list[int], replays: list[int]
) -> list[FoldedBatch]:
    """Fold ``stream`` batch by batch the way a worker does, advancing applied offsets, with
    some already folded records delivered again at the front of a later batch."""
    applied: dict[int, int | None] = {0: None, 1: None, 2: None}
    bounds = [0, *sorted(cuts), len(stream)]
    batches = []
    for index, (start, end) in enumerate(pairwise(bounds)):
        replay = stream[max(0, start - replays[index % len(replays)]) : start]
        folded = fold_batch([*replay, *stream[start:end]], applied)
        applied.update(folded.last_offsets)
        batches.append(folded)
    return batches


@settings(max_examples=150)
@given(
    streams(),
    st.lists(st.integers(0, 40), max_size=6),
    st.lists(st.integers(0, 5), min_size=1, max_size=4),
)
def test_folding_in_batches_adds_up_to_folding_the_whole_stream(
    stream: list[Consumed], cuts: list[int], replays: list[int]
) -> None:
    whole = fold_batch(stream, {0: None, 1: None, 2: None})
    batches = fold_in_batches(stream, [min(c, len(stream)) for c in cuts], replays)

    assert sum(b.increments.valid for b in batches) == whole.increments.valid
    assert sum(b.increments.invalid for b in batches) == whole.increments.invalid
    assert whole.increments.total == len(stream)
    for name in ("devices", "versions", "locales"):
        total: Counter[str] = Counter()
        for b in batches:
            total += getattr(b.increments, name)
        assert total == getattr(whole.increments, name)
    assert set().union(*(b.increments.users for b in batches)) == whole.increments.users
    assert set().union(*(b.increments.ips for b in batches)) == whole.increments.ips
    rejected = [(r.partition, r.offset) for b in batches for r in b.rejected]
    assert rejected == [(r.partition, r.offset) for r in whole.rejected]
    last: dict[int, int] = {}
    for b in batches:
        last.update(b.last_offsets)
    assert last == whole.last_offsets


# -- the inlined fast path agrees with validate() ----------------------------------------------

FIELD_LIMIT = 12  # small enough for hypothesis to cross it
field_text = st.one_of(
    st.sampled_from(["android", "iOS", "2.3.0", "TX", "u1", "10.0.0.1"]),
    st.text(min_size=1, max_size=14),  # under and over the limit, one- to four-byte characters
    st.text(alphabet=" \t\n\u00a0\u3000\x1c", min_size=1, max_size=3),  # blank
    st.text(alphabet="!\x01 é😀", min_size=1, max_size=8),  # low, control and wide characters
    st.just(""),
)


@settings(max_examples=200)
@given(
    st.lists(
        st.tuples(
            st.tuples(field_text, field_text, field_text, field_text, field_text), st.booleans()
        ),
        max_size=30,
    )
)
def test_fold_judges_every_message_as_validate_does(
    documents: list[tuple[tuple[str, str, str, str, str], bool]],
) -> None:
    values = []
    for (user, ip, device, version, locale), ascii_only in documents:
        document: dict[str, str | int] = {"user_id": user, "app_version": version, "ip": ip}
        document |= {"locale": locale, "device_type": device, "timestamp": 1}
        values.append(json.dumps(document, ensure_ascii=ascii_only).encode())
    records = [Consumed(0, offset, value) for offset, value in enumerate(values)]

    folded = fold_batch(records, {0: None}, max_field_bytes=FIELD_LIMIT)

    verdicts = [validate(value, max_field_bytes=FIELD_LIMIT) for value in values]
    events = [v for v in verdicts if isinstance(v, LoginEvent)]
    rejections = [(offset, v.code) for offset, v in enumerate(verdicts) if isinstance(v, Rejection)]
    assert [(r.offset, r.rejection.code) for r in folded.rejected] == rejections
    assert folded.increments.valid == len(events)
    assert folded.increments.users == {e.user_id for e in events}
    assert folded.increments.ips == {e.ip for e in events}
    assert folded.increments.devices == Counter(e.device_type for e in events)
    assert folded.increments.versions == Counter(e.app_version for e in events)
    assert folded.increments.locales == Counter(e.locale for e in events)


def test_blank_and_too_long_values_are_dead_lettered_with_their_codes() -> None:
    records = [
        Consumed(0, 0, login("u1")),
        Consumed(0, 1, login(" \t")),
        Consumed(0, 2, login("x" * 60_000)),
        Consumed(0, 3, login("u2", locale="\u3000")),
        Consumed(0, 4, login("u3", version="v" * 257)),
        Consumed(0, 5, login("u4", version="v" * 256)),
    ]
    folded = fold_batch(records, {0: None}, max_bytes=1 << 20)
    assert [(r.offset, r.rejection.code) for r in folded.rejected] == [
        (1, ErrorCode.EMPTY_VALUE),
        (2, ErrorCode.VALUE_TOO_LONG),
        (3, ErrorCode.EMPTY_VALUE),
        (4, ErrorCode.VALUE_TOO_LONG),
    ]
    assert folded.increments.users == {"u1", "u4"}
    assert folded.increments.versions == Counter({"2.3.0": 1, "v" * 256: 1})
