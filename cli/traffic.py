"""Login traffic for ``loginmetrics generate``: the original generator's events, plus user pools
and deliberately invalid messages for load tests. Pure: every random draw comes from one seeded
``random.Random``, the time from an injected clock."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from enum import StrEnum
from typing import Any

import msgspec

US_STATES = (
    "AL", "AK", "AZ", "AR", "CA", "CO", "CT", "DE", "FL", "GA",
    "HI", "ID", "IL", "IN", "IA", "KS", "KY", "LA", "ME", "MD",
    "MA", "MI", "MN", "MS", "MO", "MT", "NE", "NV", "NH", "NJ",
    "NM", "NY", "NC", "ND", "OH", "OK", "OR", "PA", "RI", "SC",
    "SD", "TN", "TX", "UT", "VT", "VA", "WA", "WV", "WI", "WY",
)  # fmt: skip
DEVICE_TYPES = ("android", "iOS")
APP_VERSION = "2.3.0"
# The original generator leaves device_type out of this share of its messages; the pipeline
# dead-letters them as missing_fields. Kept on purpose: it is what the system was built against.
MISSING_DEVICE_TYPE_RATIO = 0.05

# uuid4 bits: the version nibble (4) in byte 6, the RFC 4122 variant (10xx) in byte 8.
_VERSION_4 = bytes((b & 0x0F) | 0x40 for b in range(256))
_VARIANT_RFC4122 = bytes((b & 0x3F) | 0x80 for b in range(256))
# Where each of the 32 hex digits of a uuid lands in its 37-character "8-4-4-4-12 " slot.
_DIGIT_SLOTS = [j + (j >= 8) + (j >= 12) + (j >= 16) + (j >= 20) for j in range(32)]
UUID_BATCH = 1024
_OCTET = tuple(str(n) for n in range(256))
_DEVICE_JSON = {name: f',"device_type":"{name}"' for name in DEVICE_TYPES}

_encode = msgspec.json.Encoder().encode


class InvalidKind(StrEnum):
    """The kinds of deliberately invalid messages ``--invalid-ratio`` mixes in."""

    NOT_UTF8 = "not_utf8"
    NOT_JSON = "not_json"
    TRUNCATED_JSON = "truncated_json"
    JSON_ARRAY = "json_array"
    JSON_NULL = "json_null"
    NO_USER_ID = "no_user_id"
    WRONG_TYPE = "wrong_type"
    EMPTY_VALUE = "empty_value"


# The DLQ error_code the pipeline must give each kind (spec section 3).
EXPECTED_ERROR_CODE = {
    InvalidKind.NOT_UTF8: "invalid_encoding",
    InvalidKind.NOT_JSON: "invalid_json",
    InvalidKind.TRUNCATED_JSON: "invalid_json",
    InvalidKind.JSON_ARRAY: "not_an_object",
    InvalidKind.JSON_NULL: "not_an_object",
    InvalidKind.NO_USER_ID: "missing_fields",
    InvalidKind.WRONG_TYPE: "wrong_type",
    InvalidKind.EMPTY_VALUE: "empty_value",
}
_INVALID_KINDS = tuple(InvalidKind)


def uuid4_batch(rng: random.Random, count: int) -> list[str]:
    """``count`` random (version 4) UUID strings from ``rng``, formatted in bulk: a Python-level
    loop per UUID would cost more than the rest of a login event."""
    raw = bytearray(rng.randbytes(16 * count))
    raw[6::16] = raw[6::16].translate(_VERSION_4)
    raw[8::16] = raw[8::16].translate(_VARIANT_RFC4122)
    digits = raw.hex().encode("ascii")
    text = bytearray(b"-" * (37 * count))
    text[36::37] = b" " * count
    for digit, slot in enumerate(_DIGIT_SLOTS):
        text[slot::37] = digits[digit::32]
    return text.decode("ascii").split()


class LoginTraffic:
    """An endless stream of ``(key, value)`` login messages; the key is the user id.

    The same seed (and clock) gives the same stream, however it is read.
    """

    def __init__(
        self,
        seed: int | None = None,
        users: int | None = None,
        invalid_ratio: float = 0.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if users is not None and users < 1:
            raise ValueError(f"users must be at least 1, got {users}")
        if not 0.0 <= invalid_ratio <= 1.0:
            raise ValueError(f"invalid_ratio must be between 0 and 1, got {invalid_ratio}")
        self._rng = random.Random(seed)
        self._clock = clock
        self._invalid_ratio = invalid_ratio
        self._uuids: list[str] = []
        self._pool = uuid4_batch(self._rng, users) if users else None

    def uuid4(self) -> str:
        """The next random (version 4) UUID of the stream."""
        if not self._uuids:
            self._uuids = uuid4_batch(self._rng, UUID_BATCH)
        return self._uuids.pop()

    def user_id(self) -> str:
        return self._rng.choice(self._pool) if self._pool else self.uuid4()

    def login_event(self) -> dict[str, Any]:
        """One event as the original generator makes it, device_type left out in 5 %."""
        user_id, ip, locale, device_id, timestamp, device_type = self._draw()
        event: dict[str, Any] = {
            "user_id": user_id,
            "app_version": APP_VERSION,
            "ip": ip,
            "locale": locale,
            "device_id": device_id,
            "timestamp": timestamp,
        }
        if device_type is not None:
            event["device_type"] = device_type
        return event

    def next_message(self) -> tuple[bytes, bytes]:
        """The next ``(key, value)``: an invalid message with probability ``invalid_ratio``."""
        if self._invalid_ratio and self._rng.random() < self._invalid_ratio:
            return self.invalid_message(self._rng.choice(_INVALID_KINDS))
        user_id, ip, locale, device_id, timestamp, device_type = self._draw()
        # The encoding of login_event(), written out: every value is from a known alphabet
        # (hex, digits, state codes), so nothing needs escaping, and it is twice as fast.
        value = (
            f'{{"user_id":"{user_id}","app_version":"{APP_VERSION}","ip":"{ip}",'
            f'"locale":"{locale}","device_id":"{device_id}","timestamp":{timestamp}'
            f"{_DEVICE_JSON[device_type] if device_type else ''}}}"
        )
        return user_id.encode(), value.encode()

    def messages(self, count: int) -> list[tuple[bytes, bytes]]:
        return [self.next_message() for _ in range(count)]

    def invalid_message(self, kind: InvalidKind) -> tuple[bytes, bytes]:
        event = self.login_event()
        event.setdefault("device_type", self._rng.choice(DEVICE_TYPES))
        key = event["user_id"].encode()
        return key, _invalid_payload(kind, event, self._rng)

    def _draw(self) -> tuple[str, str, str, str, int, str | None]:
        rng = self._rng
        user_id = self.user_id()
        octets = rng.randbytes(4)
        ip = f"{_OCTET[octets[0]]}.{_OCTET[octets[1]]}.{_OCTET[octets[2]]}.{_OCTET[octets[3]]}"
        locale = rng.choice(US_STATES)
        # One draw decides both: left out below 5 %, then android and iOS in equal halves.
        device = rng.random()
        device_type = (
            None
            if device < MISSING_DEVICE_TYPE_RATIO
            else DEVICE_TYPES[device >= (1 + MISSING_DEVICE_TYPE_RATIO) / 2]
        )
        return user_id, ip, locale, self.uuid4(), int(self._clock()), device_type


def _invalid_payload(kind: InvalidKind, event: dict[str, Any], rng: random.Random) -> bytes:
    if kind is InvalidKind.NOT_UTF8:
        return b"\xff\xfe" + rng.randbytes(14)
    if kind is InvalidKind.NOT_JSON:
        return f"login user={event['user_id']} at {event['timestamp']}".encode()
    if kind is InvalidKind.TRUNCATED_JSON:
        whole = _encode(event)
        return whole[: len(whole) // 2]
    if kind is InvalidKind.JSON_ARRAY:
        return _encode(list(event.values()))
    if kind is InvalidKind.JSON_NULL:
        return b"null"
    if kind is InvalidKind.NO_USER_ID:
        del event["user_id"]
    elif kind is InvalidKind.WRONG_TYPE:
        field = rng.choice(("timestamp", "ip"))
        event[field] = str(event[field]) if field == "timestamp" else rng.getrandbits(32)
    else:  # EMPTY_VALUE
        event[rng.choice(("user_id", "locale", "app_version"))] = ""
    return _encode(event)
