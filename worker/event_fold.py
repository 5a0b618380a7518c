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

# Bounds of event time no timestamp reaches (epoch seconds); finite, unlike an infinite one.
_FAR = 1e18


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
    retention_seconds: float = 86_400,
    max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    max_field_bytes: int = DEFAULT_MAX_FIELD_BYTES,
) -> FoldedBatch:
    """Fold the records of partitions in ``applied`` after their applied offset (as
    ``fold.fold_batch``), on top of each partition's ``watermarks`` (None: none yet).

    A partition's watermark is its largest event time applied minus ``policy.max_delay``. A
    message older than the watermark (or the newest emitted window end, if later) by more than
    the allowed lateness, or older than the retention, is ``too_late``; one
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
    now = window_clock.now()
    future_limit = now + policy.max_future_seconds
    # Older than the retention, no window or range can hold a message: too late whatever the
    # watermark (and a fresh partition's first message from 1970 starts no endless emission).
    oldest = max(now - retention_seconds, -_FAR)
    emitted = window_clock.emitted_end
    reach = window_clock.reach()
    # A message between ``low`` and ``high`` is neither late, held nor from the future: the
    # fast path. Finite bounds, so that an infinite or NaN timestamp always takes the slow one.
    high = future_limit if reach is None else min(reach, future_limit)
    decode = event_decoder(max_field_bytes)
    run_partition, first, last = NO_OFFSET, NO_OFFSET, NO_OFFSET
    owned, floor, held = False, NO_OFFSET, False
    newest: float | None = None  # the partition's largest event time: its watermark + delay
    low = oldest
    # The bucket the last valid message went to: consecutive messages mostly share it.
    bucket_low, bucket_high = 0.0, -1.0
    bucket = _Bucket()
    add_user, add_ip, profiles = bucket.users.add, bucket.ips.add, bucket.profiles

    def bucket_of(moment: float) -> _Bucket:
        start = int(moment // bucket_seconds) * bucket_seconds
        found = buckets.get(start)
        if found is None:
            found = buckets[start] = _Bucket()
        return found

    def lowest(newest: float | None) -> float:
        """Below this a message is too late: the allowed lateness behind the partition's
        watermark, or behind the newest emitted window end when that is later."""
        mark = None if newest is None else newest - delay
        if emitted is not None and (mark is None or emitted > mark):
            mark = emitted
        return oldest if mark is None else max(oldest, mark - lateness)

    for record in records:
        if record.error() is not None:
            folded.kafka_errors.append(record.error())
            continue
        partition: int = record.partition()  # type: ignore[assignment]
        offset: int = record.offset()  # type: ignore[assignment]
        if partition != run_partition:
            folded.book(run_partition, first, last)
            if owned and newest is not None:
                marks[run_partition] = newest - delay
            run_partition, first = partition, NO_OFFSET
            owned = partition in applied
            stored = applied.get(partition)
            floor = NO_OFFSET if stored is None else stored
            mark = marks.get(partition)
            newest = None if mark is None else mark + delay
            low = lowest(newest)
            held = partition in folded.held
        if not owned or offset <= floor:
            folded.skipped += 1
            if owned and partition not in folded.behind:
                folded.behind[partition] = offset
            continue
        if held:
            continue  # read again once the windows have caught up
        value = record.value()
        event: LoginEvent | Rejection | None = None
        if value is not None and len(value) <= max_bytes:
            try:
                event = decode(value)
            except DECODE_ERRORS:
                event = judge_refused(value, max_bytes, max_field_bytes)
            else:
                # fold_batch's inlined checks, and a timestamp inside [low, high].
                moment = event.timestamp
                user, ip = event.user_id, event.ip
                if (
                    low <= moment <= high
                    and user >= "!"
                    and ip >= "!"
                    and user.isascii()
                    and ip.isascii()
                    and (value.isascii() or is_utf8(value))
                ):
                    if not bucket_low <= moment < bucket_high:
                        bucket = bucket_of(moment)
                        bucket_low = moment // bucket_seconds * bucket_seconds
                        bucket_high = bucket_low + bucket_seconds
                        add_user, add_ip, profiles = (
                            bucket.users.add,
                            bucket.ips.add,
                            bucket.profiles,
                        )
                    profile = (event.device_type, event.app_version, event.locale)
                    count = profiles.get(profile)
                    if count is not None or fields_fit(event, max_field_bytes):
                        add_user(user)
                        add_ip(ip)
                        profiles[profile] = 1 if count is None else count + 1
                        if newest is None or moment > newest:
                            newest = moment
                            low = lowest(newest)
                        if first == NO_OFFSET:
                            first = offset
                        last = offset
                        continue
                event = None  # the slow path judges it
        if event is None:
            event = validate(value, max_bytes, max_field_bytes)
        # The slow path: held, refused, late, from the future, or a rare valid one.
        if (
            not isinstance(event, Rejection)
            and reach is not None
            and reach < event.timestamp <= future_limit  # a future one is refused, not held
        ):
            folded.held[partition] = (offset, event.timestamp)
            held = True
            continue
        if first == NO_OFFSET:
            first = offset
        last = offset
        if not isinstance(event, Rejection):
            moment = event.timestamp
            if moment > future_limit:
                event = _future(value, moment, future_limit - policy.max_future_seconds)
            elif moment < low:
                event = _too_late(value, moment, low, now)
        if isinstance(event, Rejection):
            stands = newest if newest is not None else _stream_start(record, future_limit)
            bucket_of(stands).invalid += 1
            folded.rejected.append(
                RejectedRecord(partition, offset, timestamp_ms(record), value, event)
            )
            continue
        valid = bucket_of(moment)
        valid.users.add(event.user_id)
        valid.ips.add(event.ip)
        profile = (event.device_type, event.app_version, event.locale)
        valid.profiles[profile] = valid.profiles.get(profile, 0) + 1
        if newest is None or moment > newest:
            newest = moment
            low = lowest(newest)
    folded.book(run_partition, first, last)
    if owned and newest is not None:
        marks[run_partition] = newest - delay
    folded.watermarks = {
        p: w for p, w in marks.items() if p in folded.last_offsets and w is not None
    }
    for start, counted in buckets.items():
        increments = increments_of(counted.users, counted.ips, counted.profiles, counted.invalid)
        folded.buckets[start] = increments  # type: ignore[index]
        folded.increments.valid += increments.valid
        folded.increments.invalid += increments.invalid
    return folded


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


def _too_late(value: bytes | None, moment: float, low: float, now: float) -> Rejection:
    return Rejection(
        ErrorCode.TOO_LATE,
        f"timestamp {moment:g} is {low - moment:.1f} s older than the oldest time a window "
        f"still takes ({low:.1f}: the watermark less --allowed-lateness, and never before "
        f"--retention, {now - low:.0f} s before the Redis clock)",
        _document(value),
    )


def _future(value: bytes | None, moment: float, now: float) -> Rejection:
    return Rejection(
        ErrorCode.FUTURE_TIMESTAMP,
        f"timestamp {moment:g} is {moment - now:.1f} s ahead of the Redis clock {now:.1f}, "
        "more than --max-future allows",
        _document(value),
    )
