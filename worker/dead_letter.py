"""Builds the dead-letter record an operator needs to find and fix an unusable message, bounded
in its encoded size so that the DLQ producer always accepts it."""

from __future__ import annotations

import base64
import codecs
import functools
from datetime import UTC, datetime
from typing import Any

import msgspec

from loginmetrics.worker.fold import RejectedRecord
from loginmetrics.worker.validation import ErrorCode

# Most bytes of an encoded dead letter: half of the DLQ producer's message.max.bytes (librdkafka's
# default, 1,000,000) leaves room for the key, headers and record overhead. The payload is what
# can make a letter large, and JSON re-encoding can multiply it (a control character becomes the
# six bytes of \u0001, 1e15 becomes 1000000000000000.0): the bound is checked on the encoding.
DEAD_LETTER_MAX_BYTES = 512 * 1024
# A letter that would be larger keeps this much of the payload (at most 6 x 64 KiB once encoded)
# with its full length; less if even that does not fit.
EXCERPT_BYTES = 64 * 1024
# A too-large payload is only ever kept in part: it is over --max-message-bytes by definition.
TOO_LARGE_EXCERPT_BYTES = 1024
# The first excerpt always fits in practice; the smaller ones make the bound hold by construction.
_EXCERPT_SIZES = (EXCERPT_BYTES, 4096, 0)
# The reason is short by construction; this keeps the last-resort letter small whatever it says.
_ERROR_CHARS = 1000

_encode = msgspec.json.Encoder().encode
_utf8_decoder = codecs.getincrementaldecoder("utf-8")


def dead_letter(rejected: RejectedRecord, topic: str, processed_at: datetime) -> dict[str, Any]:
    """The DLQ document: the original fields of the design plus ``error_code`` and ``source``,
    at most ``DEAD_LETTER_MAX_BYTES`` once encoded."""
    return _fitted(rejected, topic, processed_at)[0]


def encode_dead_letter(rejected: RejectedRecord, topic: str, processed_at: datetime) -> bytes:
    """The dead letter as JSON bytes, never over ``DEAD_LETTER_MAX_BYTES``."""
    return _fitted(rejected, topic, processed_at)[1]


def _fitted(
    rejected: RejectedRecord, topic: str, processed_at: datetime
) -> tuple[dict[str, Any], bytes]:
    letter = _whole_letter(rejected, topic, processed_at)
    encoded = _encode(letter)
    for size in _EXCERPT_SIZES:
        if len(encoded) <= DEAD_LETTER_MAX_BYTES or rejected.value is None:
            break
        # Only the payload can make a letter this large: keep less of it until the letter fits.
        _keep_excerpt(letter, rejected.value, size)
        if size == 0:
            letter["error"] = letter["error"][:_ERROR_CHARS]
        encoded = _encode(letter)
    return letter, encoded


def _whole_letter(rejected: RejectedRecord, topic: str, processed_at: datetime) -> dict[str, Any]:
    value = rejected.value
    rejection = rejected.rejection
    letter: dict[str, Any] = {
        "topic_name": topic,
        "message": rejection.document,
        "error": rejection.error,
        "error_code": rejection.code.value,
        "processed_at_utc": _utc_text(processed_at),
        "source": {
            "partition": rejected.partition,
            "offset": rejected.offset,
            "timestamp_ms": rejected.timestamp_ms,
        },
    }
    if value is None:
        return letter
    if rejection.code is ErrorCode.TOO_LARGE:
        _keep_excerpt(letter, value, TOO_LARGE_EXCERPT_BYTES)
    elif rejection.document is None:
        _keep_payload(letter, value, cut=False)
    return letter


@functools.lru_cache(maxsize=4)
def _utc_text(moment: datetime) -> str:
    """ISO-8601 UTC without an offset; a batch's letters share one moment, formatted once."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat()


def _keep_excerpt(letter: dict[str, Any], value: bytes, size: int) -> None:
    """Replace the letter's copy of the payload by its first ``size`` bytes and its length."""
    letter["message_bytes"] = len(value)
    letter["message_truncated"] = len(value) > size
    _keep_payload(letter, value[:size], cut=len(value) > size)


def _keep_payload(letter: dict[str, Any], value: bytes, cut: bool) -> None:
    """The payload as text, or in base64 when it is not UTF-8."""
    letter.pop("message_base64", None)
    try:
        # The cut may split a character: an incremental decode drops the incomplete tail
        # (final=False) so a text payload stays text, while invalid bytes still raise.
        letter["message"] = _utf8_decoder().decode(value, final=not cut)
    except UnicodeDecodeError:
        letter["message"] = None
        letter["message_base64"] = base64.b64encode(value).decode("ascii")
