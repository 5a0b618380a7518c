"""Folds a poll batch by event time: each valid message into the bucket of its payload
``timestamp``, each partition's watermark moved along; messages too late for the window or
from too far in the future become dead letters, counted where the partition's stream stands."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import msgspec

from loginmetrics.window import WindowIncrements
from loginmetrics.window.event_time import EventTimePolicy
from loginmetrics.worker.fold import (
    NO_OFFSET,
    FoldedBatch,
    Record,
    RejectedRecord,
    increments_of,
    timestamp_ms,
)
from loginmetrics.worker.validation import (
    DECODE_ERRORS,
    DEFAULT_MAX_FIELD_BYTES,
    DEFAULT_MAX_MESSAGE_BYTES,
    ErrorCode,
    LoginEvent,
    Rejection,
    event_decoder,
    fields_fit,
    is_utf8,
    judge_refused,
    validate,
)


class WindowClock:
    """The Redis clock as this worker last saw it (each applied batch reports it), run on by
    the local clock in between: what "too far in the future" is measured against. And the end
    of the newest window emitted: a message more than the allowed lateness before it would
    change windows whose buckets may be gone, so it is too late whatever its partition's
    watermark (a partition idle for long wakes up with an old one)."""

    def __init__(self, wall: Callable[[], float] = time.time, hold_after: float = math.inf) -> None:
        """``hold_after``: how far (seconds of event time) past the newest emitted window end
        a worker may write buckets; a partition whose next message lies further waits."""
        self._wall = wall
        self._offset = 0.0  # Redis minus local; the local clock until Redis has answered
        self._hold_after = hold_after
        self.emitted_end: float | None = None
        self.first_bucket: float | None = None

    def reach(self) -> float | None:
        """The newest event time a worker may write now: ``hold_after`` past the newest emitted
        window end, or past the oldest bucket before any is emitted; None: no limit yet."""
        base = self.emitted_end if self.emitted_end is not None else self.first_bucket
        if base is None or math.isinf(self._hold_after):
            return None
        return base + self._hold_after

    def observe(self, server_time: float) -> None:
        self._offset = server_time - self._wall()

    def saw(self, emitted_end: float | None, first_bucket: float | None) -> None:
        """The window's newest emitted end and oldest bucket, as Redis reported them."""
        if emitted_end is not None:
            self.emitted_end = emitted_end
        if first_bucket is not None:
            self.first_bucket = first_bucket

    def now(self) -> float:
        return self._wall() + self._offset


@dataclass(slots=True)
class _Bucket:
    users: set[str] = field(default_factory=set)
    ips: set[str] = field(default_factory=set)
    profiles: dict[tuple[str, str, str], int] = field(default_factory=dict)
    invalid: int = 0


def fold_event_batch(
    records: Sequence[Record],
    applied: Mapping[int, int | None],
    watermarks: Mapping[int, float | None],
    *,
    policy: EventTimePolicy,
    bucket_seconds: int,
    window_clock: WindowClock,
    max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    max_field_bytes: int = DEFAULT_MAX_FIELD_BYTES,
) -> FoldedBatch:
    """Fold the records of partitions in ``applied`` after their applied offset (as
    ``fold.fold_batch``), on top of each partition's ``watermarks`` (None: none yet).

    A partition's watermark is its largest event time applied minus ``policy.max_delay``. A
    message older than the watermark (or the newest emitted window end, if later) by more than
    the allowed lateness is ``too_late``; one
    further ahead of the Redis clock than ``max_future`` is ``future_timestamp``. Both, and
    every invalid message, are counted as errors in the bucket where the partition's stream
    stands (its watermark plus the delay; before any, the message's Kafka timestamp), so that
    a replay puts every count where a live run did.

    A partition whose next message lies beyond ``window_clock.reach()`` is not folded from
    there on (``held``): during a catch-up, the buckets in Redis never run further ahead of the
    emitted windows than that, whatever the backlog.
    """
    folded = FoldedBatch(WindowIncrements(), buckets={})
    buckets: dict[int, _Bucket] = {}
    marks = dict(watermarks)
    delay, lateness = policy.max_delay_seconds, policy.allowed_lateness_seconds
    future_limit = window_clock.now() + policy.max_future_seconds
    emitted = window_clock.emitted_end
    reach = window_clock.reach()
    decode = event_decoder(max_field_bytes)
    run_partition, first, last = NO_OFFSET, NO_OFFSET, NO_OFFSET
    owned, floor = False, NO_OFFSET
    mark: float | None = None

    def bucket_of(moment: float) -> _Bucket:
        start = int(moment // bucket_seconds) * bucket_seconds
        found = buckets.get(start)
        if found is None:
            found = buckets[start] = _Bucket()
        return found

    def reject(record: Record, rejection: Rejection) -> None:
        stands = mark + delay if mark is not None else _stream_start(record, future_limit)
        bucket_of(stands).invalid += 1
        folded.rejected.append(
            RejectedRecord(partition, offset, timestamp_ms(record), record.value(), rejection)
        )

    for record in records:
        if record.error() is not None:
            folded.kafka_errors.append(record.error())
            continue
        partition: int = record.partition()  # type: ignore[assignment]
        offset: int = record.offset()  # type: ignore[assignment]
        if partition != run_partition:
            folded.book(run_partition, first, last)
            if run_partition != NO_OFFSET and owned and mark is not None:
                marks[run_partition] = mark
            run_partition, first = partition, NO_OFFSET
            owned = partition in applied
            stored = applied.get(partition)
            floor = NO_OFFSET if stored is None else stored
            mark = marks.get(partition)
        if not owned or offset <= floor:
            folded.skipped += 1
            if owned and partition not in folded.behind:
                folded.behind[partition] = offset
            continue
        if partition in folded.held:
            continue  # read again once the windows have caught up
        value = record.value()
        event = _judge(value, decode, max_bytes, max_field_bytes)
        if (
            not isinstance(event, Rejection)
            and reach is not None
            and reach < event.timestamp <= future_limit  # a future one is refused, not held
        ):
            folded.held[partition] = (offset, event.timestamp)
            continue
        if first == NO_OFFSET:
            first = offset
        last = offset
        if isinstance(event, Rejection):
            reject(record, event)
            continue
        moment = event.timestamp
        if moment > future_limit:
            reject(record, _future(value, moment, future_limit - policy.max_future_seconds))
            continue
        floor_mark = mark if emitted is None or (mark is not None and mark > emitted) else emitted
        if floor_mark is not None and moment < floor_mark - lateness:
            reject(record, _too_late(value, moment, floor_mark, lateness))
            continue
        bucket = bucket_of(moment)
        bucket.users.add(event.user_id)
        bucket.ips.add(event.ip)
        profile = (event.device_type, event.app_version, event.locale)
        bucket.profiles[profile] = bucket.profiles.get(profile, 0) + 1
        if mark is None or moment - delay > mark:
            mark = moment - delay
    folded.book(run_partition, first, last)
    if run_partition != NO_OFFSET and owned and mark is not None:
        marks[run_partition] = mark
    folded.watermarks = {
        p: w for p, w in marks.items() if p in folded.last_offsets and w is not None
    }
    for start, bucket in buckets.items():
        increments = increments_of(bucket.users, bucket.ips, bucket.profiles, bucket.invalid)
        folded.buckets[start] = increments  # type: ignore[index]
        folded.increments.valid += increments.valid
        folded.increments.invalid += increments.invalid
    return folded


def _judge(
    value: bytes | None,
    decode: Callable[[bytes], LoginEvent],
    max_bytes: int,
    max_field_bytes: int,
) -> LoginEvent | Rejection:
    """validate()'s verdict, by its fast path where it can (the same checks fold_batch inlines)."""
    if value is None or len(value) > max_bytes:
        return validate(value, max_bytes, max_field_bytes)
    try:
        event = decode(value)
    except DECODE_ERRORS:
        return judge_refused(value, max_bytes, max_field_bytes)
    if (
        event.timestamp - event.timestamp == 0
        and event.user_id >= "!"
        and event.ip >= "!"
        and event.user_id.isascii()
        and event.ip.isascii()
        and (value.isascii() or is_utf8(value))
        and fields_fit(event, max_field_bytes)
    ):
        return event
    return validate(value, max_bytes, max_field_bytes)


def _stream_start(record: Record, limit: float) -> float:
    """Where a partition with no watermark yet stands: its message's Kafka timestamp, never past
    the future limit (the Redis clock when there is none)."""
    stamp = timestamp_ms(record)
    return limit if stamp is None else min(stamp / 1000, limit)


def _document(value: bytes | None) -> dict[str, object] | None:
    try:
        document = msgspec.json.decode(value or b"")
    except msgspec.DecodeError:
        return None
    return document if isinstance(document, dict) else None


def _too_late(value: bytes | None, moment: float, mark: float, lateness: float) -> Rejection:
    behind = mark - moment
    return Rejection(
        ErrorCode.TOO_LATE,
        f"timestamp {moment:g} is {behind:.1f} s behind the watermark {mark:.1f}, "
        f"more than the {lateness:g} s allowed (--allowed-lateness)",
        _document(value),
    )


def _future(value: bytes | None, moment: float, now: float) -> Rejection:
    return Rejection(
        ErrorCode.FUTURE_TIMESTAMP,
        f"timestamp {moment:g} is {moment - now:.1f} s ahead of the Redis clock {now:.1f}, "
        "more than --max-future allows",
        _document(value),
    )
