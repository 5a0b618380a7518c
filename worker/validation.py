"""Decides whether a raw message is a usable login event, and if not, why (a stable code)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, cast

import msgspec

REQUIRED_TEXT_FIELDS = ("user_id", "app_version", "ip", "locale", "device_type")
REQUIRED_FIELDS = (*REQUIRED_TEXT_FIELDS, "timestamp")
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024
# Longest required string, in UTF-8 bytes: these values become Redis members and metric event keys.
DEFAULT_MAX_FIELD_BYTES = 256
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
    VALUE_TOO_LONG = "value_too_long"
    TOO_LARGE = "too_large"
    # Event time only: valid, but its timestamp cannot be placed in the window.
    TOO_LATE = "too_late"
    FUTURE_TIMESTAMP = "future_timestamp"


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


@functools.cache
def event_decoder(max_field_bytes: int) -> Callable[[bytes], LoginEvent]:
    """validate()'s fast path, which worker.fold inlines in its per-message loop.

    The decoder refuses required strings of more than ``max_field_bytes`` characters: a string
    that long is over the limit in bytes too. A shorter one may still be over it (a character
    takes up to 4 bytes in UTF-8), which ``fields_fit`` checks.
    """
    text = Annotated[str, msgspec.Meta(min_length=1, max_length=max_field_bytes)]
    # A subclass of its own for fold's inner loop; validate() hands out plain LoginEvents.
    limited = msgspec.defstruct(
        "BoundedLoginEvent",
        [(name, text) for name in REQUIRED_TEXT_FIELDS],
        bases=(LoginEvent,),
        frozen=True,
        gc=False,
    )
    return cast("Callable[[bytes], LoginEvent]", msgspec.json.Decoder(limited).decode)


def fields_fit(event: LoginEvent, max_field_bytes: int) -> bool:
    """No required string of ``event`` is only whitespace or over ``max_field_bytes`` bytes."""
    for name in REQUIRED_TEXT_FIELDS:
        text: str = getattr(event, name)
        if text.isspace() or _utf8_length(text) > max_field_bytes:
            return False
    return True


def _utf8_length(text: str) -> int:
    # isascii() is O(1) in CPython; surrogatepass: a decoded JSON string never holds a lone
    # surrogate, but a length check must not be what raises if one ever did.
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


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
    value: bytes | None,
    max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    max_field_bytes: int = DEFAULT_MAX_FIELD_BYTES,
) -> LoginEvent | Rejection:
    """Return the event, or the reason it is unusable. Never raises, whatever the bytes."""
    if value is not None and len(value) <= max_bytes:
        try:
            event = event_decoder(max_field_bytes)(value)
        except DECODE_ERRORS:
            pass
        else:
            # inf - inf is nan, which is not equal to itself: rejects non-finite numbers cheaply.
            # msgspec skips unknown fields without checking their UTF-8, so check the payload.
            if (
                event.timestamp - event.timestamp == 0
                and is_utf8(value)
                and fields_fit(event, max_field_bytes)
            ):
                return _plain(event)
    return judge_refused(value, max_bytes, max_field_bytes)


def judge_refused(
    value: bytes | None,
    max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    max_field_bytes: int = DEFAULT_MAX_FIELD_BYTES,
) -> LoginEvent | Rejection:
    """validate()'s verdict on a message its fast path refused (without trying that again)."""
    rejection = classify(value, max_bytes, max_field_bytes)
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


def _plain(event: LoginEvent) -> LoginEvent:
    return LoginEvent(
        event.user_id,
        event.app_version,
        event.ip,
        event.locale,
        event.device_type,
        event.timestamp,
    )


def is_utf8(value: bytes) -> bool:
    if value.isascii():  # the common case, and much cheaper than decoding
        return True
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def classify(
    value: bytes | None,
    max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    max_field_bytes: int = DEFAULT_MAX_FIELD_BYTES,
) -> Rejection:
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
    return _classify_document(document, max_field_bytes)


def _classify_document(document: dict[str, Any], max_field_bytes: int) -> Rejection:
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
    # A blank value is empty whatever its length: empty_value comes before value_too_long.
    empty = [name for name in REQUIRED_TEXT_FIELDS if not document[name].strip()]
    if empty:
        return Rejection(
            ErrorCode.EMPTY_VALUE, f"Fields must not be empty or whitespace: {empty}", document
        )
    lengths = {name: _utf8_length(document[name]) for name in REQUIRED_TEXT_FIELDS}
    too_long = [f"{name} ({n} bytes)" for name, n in lengths.items() if n > max_field_bytes]
    if too_long:
        return Rejection(
            ErrorCode.VALUE_TOO_LONG,
            f"Fields over the limit of {max_field_bytes} UTF-8 bytes: {', '.join(too_long)}",
            document,
        )
    # The fast decoder refused a document this path finds valid (a duplicated name: see
    # validate, which reads it the same way and accepts it).
    return Rejection(ErrorCode.WRONG_TYPE, DECODER_REFUSED, document)


def _type_name(value: object) -> str:
    return _JSON_TYPE_NAMES.get(type(value), type(value).__name__)
