"""Folds a poll batch into window increments, dead letters and per-partition offset ranges."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from window import WindowIncrements
from worker.validation import DEFAULT_MAX_MESSAGE_BYTES, LoginEvent, Rejection, validate


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


def fold_batch(
    records: Sequence[Record],
    applied: Mapping[int, int | None],
    max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
) -> FoldedBatch:
    """Fold the records of partitions in ``applied`` that come after their applied offset.

    ``applied`` maps each partition this worker owns to the last offset already in the window
    (None: nothing yet). Records of other partitions, or at or below that offset (a stale
    prefetch after a seek), are skipped: they are, or will be, someone else's to apply.
    """
    users: set[str] = set()
    ips: set[str] = set()
    devices: list[str] = []
    versions: list[str] = []
    locales: list[str] = []
    folded = FoldedBatch(WindowIncrements())
    first_offsets = folded.first_offsets
    last_offsets = folded.last_offsets
    for record in records:
        if record.error() is not None:
            folded.kafka_errors.append(record.error())
            continue
        partition: int = record.partition()  # type: ignore[assignment]
        offset: int = record.offset()  # type: ignore[assignment]
        if partition not in applied:
            folded.skipped += 1
            continue
        floor = applied[partition]
        if floor is not None and offset <= floor:
            folded.skipped += 1
            continue
        if partition not in first_offsets:
            first_offsets[partition] = offset
        last_offsets[partition] = offset
        value = record.value()
        result = validate(value, max_bytes)
        if type(result) is LoginEvent:
            users.add(result.user_id)
            ips.add(result.ip)
            devices.append(result.device_type)
            versions.append(result.app_version)
            locales.append(result.locale)
        else:
            folded.rejected.append(
                RejectedRecord(partition, offset, _timestamp_ms(record), value, result)  # type: ignore[arg-type]
            )
    increments = folded.increments
    increments.users = users
    increments.ips = ips
    increments.devices = Counter(devices)
    increments.versions = Counter(versions)
    increments.locales = Counter(locales)
    increments.valid = len(devices)
    increments.invalid = len(folded.rejected)
    return folded


def _timestamp_ms(record: Record) -> int | None:
    kind, value = record.timestamp()
    return value if kind else None  # kind 0: TIMESTAMP_NOT_AVAILABLE
