"""Folds a poll batch into window increments, dead letters and per-partition offset ranges."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from loginmetrics.window import WindowIncrements
from loginmetrics.worker.validation import (
    DECODE_ERRORS,
    DEFAULT_MAX_FIELD_BYTES,
    DEFAULT_MAX_MESSAGE_BYTES,
    LoginEvent,
    Rejection,
    event_decoder,
    fields_fit,
    is_utf8,
    judge_refused,
    validate,
)

NO_OFFSET = -1  # below every Kafka offset


class Record(Protocol):
    """The part of a consumed Kafka message folding reads (confluent_kafka.Message fits)."""

    def error(self) -> Any: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...
    def value(self) -> bytes | None: ...
    def timestamp(self) -> tuple[int, int]: ...


@dataclass(frozen=True, slots=True)
class RejectedRecord:
    """An unusable message and where it came from."""

    partition: int
    offset: int
    timestamp_ms: int | None
    value: bytes | None
    rejection: Rejection


@dataclass(slots=True)
class FoldedBatch:
    increments: WindowIncrements
    rejected: list[RejectedRecord] = field(default_factory=list)
    # partition -> first and last offset folded from it
    first_offsets: dict[int, int] = field(default_factory=dict)
    last_offsets: dict[int, int] = field(default_factory=dict)
    # Records that were not messages (librdkafka errors) or were already applied.
    kafka_errors: list[Any] = field(default_factory=list)
    skipped: int = 0
    # partition -> first offset consumed at or below its applied offset: the consumer went back
    # under the worker (a position reset), since a seek drops what was fetched before it.
    behind: dict[int, int] = field(default_factory=dict)
    # Event time: bucket start -> its increments (``increments`` then only counts them), and
    # the watermark each folded partition reaches. None in processing time.
    buckets: dict[int, WindowIncrements] | None = None
    watermarks: dict[int, float] = field(default_factory=dict)
    # Event time: partition -> (offset, event time) of the first message too far ahead of the
    # emitted windows; it and the rest of its partition were not folded.
    held: dict[int, tuple[int, float]] = field(default_factory=dict)

    def book(self, partition: int, first: int, last: int) -> None:
        """Offsets ``first`` .. ``last`` of ``partition`` were folded (nothing if NO_OFFSET)."""
        if first != NO_OFFSET:
            self.first_offsets.setdefault(partition, first)
            self.last_offsets[partition] = last


def fold_batch(
    records: Sequence[Record],
    applied: Mapping[int, int | None],
    max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    max_field_bytes: int = DEFAULT_MAX_FIELD_BYTES,
) -> FoldedBatch:
    """Fold the records of partitions in ``applied`` that come after their applied offset.

    ``applied`` maps each partition this worker owns to the last offset already in the window
    (None: nothing yet). Records of other partitions, or at or below that offset (a stale
    prefetch after a seek), are skipped: they are, or will be, someone else's to apply.
    """
    folded = FoldedBatch(WindowIncrements())  # increments filled in at the end
    users: set[str] = set()
    ips: set[str] = set()
    # (device_type, app_version, locale) -> valid messages. Counting as we go, rather than keeping
    # three strings per message for Counter(), leaves far fewer objects to allocate and free.
    profiles: dict[tuple[str, str, str], int] = {}
    # This loop runs once per message: methods are bound once, offsets are booked once per run
    # of consecutive records of one partition (consume() returns them in such runs), and
    # validate()'s fast path is inlined.
    add_user, add_ip, profile_count = users.add, ips.add, profiles.get
    decode = event_decoder(max_field_bytes)
    reject = folded.rejected.append
    run_partition, first, last = NO_OFFSET, NO_OFFSET, NO_OFFSET
    owned, floor = False, NO_OFFSET
    for record in records:
        if record.error() is not None:
            folded.kafka_errors.append(record.error())
            continue
        partition: int = record.partition()  # type: ignore[assignment]
        offset: int = record.offset()  # type: ignore[assignment]
        if partition != run_partition:
            folded.book(run_partition, first, last)
            run_partition, first = partition, NO_OFFSET
            owned = partition in applied
            stored = applied.get(partition)
            floor = NO_OFFSET if stored is None else stored
        if not owned or offset <= floor:
            folded.skipped += 1
            if owned and partition not in folded.behind:
                folded.behind[partition] = offset
            continue
        if first == NO_OFFSET:
            first = offset
        last = offset
        value = record.value()
        event: LoginEvent | Rejection | None = None
        if value is not None and len(value) <= max_bytes:
            try:
                event = decode(value)
            except DECODE_ERRORS:
                event = judge_refused(value, max_bytes, max_field_bytes)  # not decoded again
            else:
                # Same checks as validate(): a finite timestamp, a UTF-8 payload, and required
                # strings neither blank nor over the limit. The decoder counted characters,
                # which are bytes in an ASCII string, and a blank ASCII string starts with a
                # character <= " ": rare strings (non-ASCII, or starting that low) are left to
                # validate(). Device, version and locale are checked when new to the batch.
                user, ip = event.user_id, event.ip
                profile = (event.device_type, event.app_version, event.locale)
                count = profile_count(profile)
                if (
                    event.timestamp - event.timestamp == 0
                    and user >= "!"
                    and ip >= "!"
                    and user.isascii()
                    and ip.isascii()
                    and (value.isascii() or is_utf8(value))
                    and (count is not None or fields_fit(event, max_field_bytes))
                ):
                    add_user(user)
                    add_ip(ip)
                    profiles[profile] = 1 if count is None else count + 1
                    continue
                event = None
        if event is None:
            event = validate(value, max_bytes, max_field_bytes)  # the verdict, and the reason
        if isinstance(event, Rejection):
            reject(RejectedRecord(partition, offset, timestamp_ms(record), value, event))
            continue
        user, ip = event.user_id, event.ip
        profile = (event.device_type, event.app_version, event.locale)
        count = profile_count(profile)
        add_user(user)
        add_ip(ip)
        profiles[profile] = 1 if count is None else count + 1
    folded.book(run_partition, first, last)
    folded.increments = increments_of(users, ips, profiles, invalid=len(folded.rejected))
    return folded


def first_offsets(records: Sequence[Record]) -> tuple[dict[int, int], list[Any]]:
    """Partition -> the first offset among ``records``, and the errors that came instead of
    messages (for records put back unfolded)."""
    first: dict[int, int] = {}
    errors = []
    for record in records:
        partition, offset = record.partition(), record.offset()
        if record.error() is not None:
            errors.append(record.error())
        elif partition is not None and offset is not None:
            first.setdefault(partition, offset)
    return first, errors


def increments_of(
    users: set[str], ips: set[str], profiles: dict[tuple[str, str, str], int], invalid: int
) -> WindowIncrements:
    increments = WindowIncrements(users=users, ips=ips, invalid=invalid)
    for (device, version, locale), count in profiles.items():
        increments.devices[device] += count
        increments.versions[version] += count
        increments.locales[locale] += count
        increments.valid += count
    return increments


def timestamp_ms(record: Record) -> int | None:
    kind, value = record.timestamp()
    return value if kind else None  # kind 0: TIMESTAMP_NOT_AVAILABLE
