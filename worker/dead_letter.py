"""Builds the dead-letter record an operator needs to find and fix an unusable message."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import msgspec

from worker.fold import RejectedRecord
from worker.validation import ErrorCode

# A too-large payload is kept in part: copying it whole could exceed the DLQ's own size limit.
TOO_LARGE_EXCERPT_BYTES = 1024

_encode = msgspec.json.Encoder().encode


def dead_letter(rejected: RejectedRecord, topic: str, processed_at: datetime) -> dict[str, Any]:
    """The DLQ document: the original fields of the design plus ``error_code`` and ``source``."""
    value = rejected.value
    rejection = rejected.rejection
    letter: dict[str, Any] = {
        "topic_name": topic,
        "message": rejection.document,
        "error": rejection.error,
        "error_code": rejection.code.value,
        "processed_at_utc": processed_at.astimezone(UTC).replace(tzinfo=None).isoformat(),
        "source": {
            "partition": rejected.partition,
            "offset": rejected.offset,
            "timestamp_ms": rejected.timestamp_ms,
        },
    }
    if rejection.document is None and value is not None:
        if rejection.code is ErrorCode.TOO_LARGE:
            letter["message_bytes"] = len(value)
            letter["message_truncated"] = True
            value = value[:TOO_LARGE_EXCERPT_BYTES]
        try:
            letter["message"] = value.decode("utf-8")
        except UnicodeDecodeError:
            letter["message_base64"] = base64.b64encode(value).decode("ascii")
    return letter


def encode_dead_letter(rejected: RejectedRecord, topic: str, processed_at: datetime) -> bytes:
    return _encode(dead_letter(rejected, topic, processed_at))
