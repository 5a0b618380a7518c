"""Decides whether a raw message is a usable login event, and if not, why (a stable code)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any

import msgspec

REQUIRED_TEXT_FIELDS = ("user_id", "app_version", "ip", "locale", "device_type")
REQUIRED_FIELDS = (*REQUIRED_TEXT_FIELDS, "timestamp")
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024
# classify's reason for a document it finds nothing wrong with (only the event decoder refused it)
DECODER_REFUSED = "Document refused by the event decoder"

NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]


class ErrorCode(StrEnum):
    INVALID_ENCODING = "invalid_encoding"
    INVALID_JSON = "invalid_json"
    NOT_AN_OBJECT = "not_an_object"
    MISSING_FIELDS = "missing_fields"
    WRONG_TYPE = "wrong_type"
    EMPTY_VALUE = "empty_value"
    TOO_LARGE = "too_large"


class LoginEvent(msgspec.Struct, frozen=True, gc=False):
    """A valid login. ``device_id`` and unknown fields are allowed and ignored."""

    user_id: NonEmpty
    app_version: NonEmpty
    ip: NonEmpty
    locale: NonEmpty
    device_type: NonEmpty
    timestamp: int | float


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a message is unusable; ``document`` is the parsed JSON object when there was one."""

    code: ErrorCode
    error: str
    document: dict[str, Any] | None = None


# validate()'s fast path; worker.fold inlines it in its per-message loop.
decode_event = msgspec.json.Decoder(LoginEvent).decode
DECODE_ERRORS = (msgspec.DecodeError, RecursionError, MemoryError, ValueError)
_decode_any = msgspec.json.Decoder().decode

_JSON_TYPE_NAMES = {
    dict: "an object",
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
    type(None): "null",
}


def validate(
    value: bytes | None, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
) -> LoginEvent | Rejection:
    """Return the event, or the reason it is unusable. Never raises, whatever the bytes."""
    if value is not None and len(value) <= max_bytes:
        try:
            event = decode_event(value)
        except DECODE_ERRORS:
            pass
        else:
            # inf - inf is nan, which is not equal to itself: rejects non-finite numbers cheaply.
            # msgspec skips unknown fields without checking their UTF-8, so check the payload.
            if event.timestamp - event.timestamp == 0 and is_utf8(value):
                return event
    rejection = classify(value, max_bytes)
    if rejection.error == DECODER_REFUSED and rejection.document is not None:
        # Only a duplicated field name gets here: the event decoder type-checks every
        # occurrence, while the document keeps the last one (as json.loads, JSON.parse and
        # Jackson do) and classify judges that one. Accept it by the same reading, so the
        # verdict never depends on the order of the duplicates.
        try:
            return msgspec.convert(rejection.document, LoginEvent)
        except msgspec.ValidationError:
            pass
    return rejection


def is_utf8(value: bytes) -> bool:
    if value.isascii():  # the common case, and much cheaper than decoding
        return True
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def classify(value: bytes | None, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> Rejection:
    """The slow path: name exactly what is wrong with a message the fast decoder refused."""
    if value is None:
        return Rejection(ErrorCode.NOT_AN_OBJECT, "Message has no value (tombstone)")
    if len(value) > max_bytes:
        return Rejection(
            ErrorCode.TOO_LARGE,
            f"Message is {len(value)} bytes, over the limit of {max_bytes} bytes",
        )
    try:
        value.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Rejection(
            ErrorCode.INVALID_ENCODING, f"Payload is not UTF-8: {exc.reason} at byte {exc.start}"
        )
    try:
        document = _decode_any(value)
    except DECODE_ERRORS as exc:
        return Rejection(ErrorCode.INVALID_JSON, f"Payload is not valid JSON: {exc}")
    if not isinstance(document, dict):
        kind = _JSON_TYPE_NAMES.get(type(document), type(document).__name__)
        return Rejection(ErrorCode.NOT_AN_OBJECT, f"Payload is {kind}, expected a JSON object")
    return _classify_document(document)


def _classify_document(document: dict[str, Any]) -> Rejection:
    missing = [name for name in REQUIRED_FIELDS if name not in document]
    if missing:
        return Rejection(ErrorCode.MISSING_FIELDS, f"Missing required fields: {missing}", document)
    for name in REQUIRED_TEXT_FIELDS:
        if not isinstance(document[name], str):
            return Rejection(
                ErrorCode.WRONG_TYPE,
                f"Field {name!r} must be a string, got {_type_name(document[name])}",
                document,
            )
    timestamp = document["timestamp"]
    if isinstance(timestamp, bool) or not isinstance(timestamp, int | float):
        return Rejection(
            ErrorCode.WRONG_TYPE,
            f"Field 'timestamp' must be a number of epoch seconds, got {_type_name(timestamp)}",
            document,
        )
    if timestamp - timestamp != 0:
        return Rejection(
            ErrorCode.WRONG_TYPE, f"Field 'timestamp' must be finite, got {timestamp}", document
        )
    empty = [name for name in REQUIRED_TEXT_FIELDS if not document[name]]
    if empty:
        return Rejection(ErrorCode.EMPTY_VALUE, f"Fields must not be empty: {empty}", document)
    # The fast decoder refused a document this path finds valid (a duplicated name: see
    # validate, which reads it the same way and accepts it).
    return Rejection(ErrorCode.WRONG_TYPE, DECODER_REFUSED, document)


def _type_name(value: object) -> str:
    return _JSON_TYPE_NAMES.get(type(value), type(value).__name__)
