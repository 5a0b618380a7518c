"""Builds the dead-letter record an operator needs to find and fix an unusable message."""

from __future__ import annotations

import base64
import codecs
from datetime import UTC, datetime
from typing import Any

import msgspec

from loginmetrics.worker.fold import RejectedRecord
from loginmetrics.worker.validation import ErrorCode

# A too-large payload is kept in part: copying it whole could exceed the DLQ's own size limit.
TOO_LARGE_EXCERPT_BYTES = 1024
# Any payload over this is excerpted too, so a raised --max-message-bytes cannot produce a dead
# letter the broker refuses (its default limit is 1 MB).
KEPT_PAYLOAD_BYTES = 256 * 1024

_encode = msgspec.json.Encoder().encode
_utf8_decoder = codecs.getincrementaldecoder("utf-8")


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
    if value is None:
        return letter
    cut = False
    if rejection.code is ErrorCode.TOO_LARGE or len(value) > KEPT_PAYLOAD_BYTES:
        letter["message"] = None
        letter["message_bytes"] = len(value)
        letter["message_truncated"] = True
        cut = len(value) > TOO_LARGE_EXCERPT_BYTES
        value = value[:TOO_LARGE_EXCERPT_BYTES]
    elif rejection.document is not None:
        return letter
    try:
        # The cut may split a character: an incremental decode drops the incomplete tail
        # (final=False) so a text payload stays text, while invalid bytes still raise.
        letter["message"] = _utf8_decoder().decode(value, final=not cut)
    except UnicodeDecodeError:
        letter["message_base64"] = base64.b64encode(value).decode("ascii")
    return letter


def encode_dead_letter(rejected: RejectedRecord, topic: str, processed_at: datetime) -> bytes:
    return _encode(dead_letter(rejected, topic, processed_at))
