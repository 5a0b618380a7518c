"""Login traffic for ``loginmetrics generate``, the tests and the benchmarks: the original
generator's events, plus user pools, other value mixes and deliberately invalid messages. Pure:
every random draw comes from one seeded ``random.Random``, the time from an injected clock."""

from __future__ import annotations

import bisect
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from math import gcd
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
# The pool walk's step: the first number from here that is coprime with the pool size.
_STRIDE_FROM = 7919

_encode = msgspec.json.Encoder().encode
# One login's fields: user_id, app_version, ip, locale, device_id, timestamp, device_type (None:
# left out). A plain tuple: this is made once per message on generate's fast path.
_Login = tuple[str, str, str, str, str, int, str | None]


@dataclass(frozen=True)
class ValueMix:
    """The values of a login's fields that are drawn from a list, each value equally likely;
    device_type is left out of ``missing_device_type`` of the logins."""

    versions: tuple[str, ...] = (APP_VERSION,)
    locales: tuple[str, ...] = US_STATES
    device_types: tuple[str, ...] = DEVICE_TYPES
    missing_device_type: float = MISSING_DEVICE_TYPE_RATIO

    def __post_init__(self) -> None:
        for name in ("versions", "locales", "device_types"):
            values: tuple[str, ...] = getattr(self, name)
            if not values:
                raise ValueError(f"{name} must not be empty")
            for value in values:
                # The fast encoding writes values between quotes as they are.
                if not value or _encode(value) != f'"{value}"'.encode():
                    raise ValueError(f"{name}: {value!r} is empty or needs escaping in JSON")
        if not 0.0 <= self.missing_device_type < 1.0:
            raise ValueError(
                f"missing_device_type must be in [0, 1), got {self.missing_device_type}"
            )


ORIGINAL = ValueMix()
# Several values in every distribution and no login left without device_type, so invalid
# messages are exactly the planned ones: the tests' and the benchmarks' traffic.
VARIED = ValueMix(
    versions=("2.3.0", "2.4.1", "3.0.0"),
    locales=("TX", "OH", "CA", "NY", "LA", "WA", "FL"),
    device_types=("android", "iOS", "web"),
    missing_device_type=0.0,
)


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
MISSING_DEVICE_TYPE_CODE = "missing_fields"
_INVALID_KINDS = tuple(InvalidKind)


@dataclass(frozen=True, slots=True)
class PlannedMessage:
    """One message and what it must do to the window, known by construction: counted as
    ``event`` (``code`` None) or dead-lettered with ``code``; ``kind`` names what was meant."""

    key: bytes | None
    value: bytes | None
    code: str | None = None
    event: dict[str, Any] | None = None
    kind: str = "login"


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

    Deliberately invalid messages come at random (``invalid_ratio``, kinds drawn at random) or
    as every ``invalid_every``-th message (kinds in turn). With ``cover_users`` the pool of
    ``users`` is walked with a fixed stride instead of drawn from, so any ``users`` consecutive
    logins hold every user once. ``next_planned`` gives the same stream with what each message
    must do to the window. The same seed (and clock) gives the same stream, however it is read.
    """

    def __init__(
        self,
        seed: int | None = None,
        users: int | None = None,
        invalid_ratio: float = 0.0,
        clock: Callable[[], float] = time.time,
        *,
        mix: ValueMix = ORIGINAL,
        invalid_every: int = 0,
        cover_users: bool = False,
    ) -> None:
        if users is not None and users < 1:
            raise ValueError(f"users must be at least 1, got {users}")
        if not 0.0 <= invalid_ratio <= 1.0:
            raise ValueError(f"invalid_ratio must be between 0 and 1, got {invalid_ratio}")
        if invalid_every < 0 or (invalid_every and invalid_ratio):
            raise ValueError("invalid_every is a count of 0 or more, and excludes invalid_ratio")
        if cover_users and users is None:
            raise ValueError("cover_users walks a pool: it needs users")
        self._rng = random.Random(seed)
        self._clock = clock
        self._invalid_ratio = invalid_ratio
        self._invalid_every = invalid_every
        self._sent = 0
        self._uuids: list[str] = []
        self._pool = uuid4_batch(self._rng, users) if users else None
        self._walk = 0
        self._stride = next(s for s in range(_STRIDE_FROM, 2**31) if gcd(s, users or 1) == 1)
        self._cover = cover_users
        self._versions = mix.versions
        self._locales = mix.locales
        self._device_types = mix.device_types
        self._missing_device_type = mix.missing_device_type
        # One draw decides device_type: left out below missing_device_type, then equal shares.
        share = (1.0 - mix.missing_device_type) / len(mix.device_types)
        self._device_cuts = [
            mix.missing_device_type + share * i for i in range(1, len(mix.device_types))
        ]

    def uuid4(self) -> str:
        """The next random (version 4) UUID of the stream."""
        if not self._uuids:
            self._uuids = uuid4_batch(self._rng, UUID_BATCH)
        return self._uuids.pop()

    def user_id(self) -> str:
        """A user of the pool (the next on the walk with ``cover_users``), else a fresh uuid4."""
        pool = self._pool
        if pool is None:
            return self.uuid4()
        if self._cover:
            self._walk += 1
            return pool[(self._walk * self._stride) % len(pool)]
        return self._rng.choice(pool)

    def login_event(self) -> dict[str, Any]:
        """One event of the mix, device_type left out in ``missing_device_type`` of them."""
        return _event(self._draw(self.user_id()))

    def next_message(self) -> tuple[bytes, bytes]:
        """The next ``(key, value)``."""
        if self._invalid_every or self._invalid_ratio:  # a test of two floats: the fast path
            kind = self._invalid_kind()
            if kind is not None:
                return self.invalid_message(kind)
        login = self._draw(self.user_id())
        return login[0].encode(), _login_json(login)

    def messages(self, count: int) -> list[tuple[bytes, bytes]]:
        return [self.next_message() for _ in range(count)]

    def next_planned(self) -> PlannedMessage:
        """The next message, as ``next_message`` would give it, with what it must do."""
        kind = self._invalid_kind()
        if kind is not None:
            key, value = self.invalid_message(kind)
            return PlannedMessage(key, value, EXPECTED_ERROR_CODE[kind], None, kind.value)
        login = self._draw(self.user_id())
        key, value = login[0].encode(), _login_json(login)
        if login[-1] is None:
            return PlannedMessage(key, value, MISSING_DEVICE_TYPE_CODE, None, "no_device_type")
        return PlannedMessage(key, value, None, _event(login))

    def plan(self, count: int) -> list[PlannedMessage]:
        return [self.next_planned() for _ in range(count)]

    def invalid_message(self, kind: InvalidKind) -> tuple[bytes, bytes]:
        """A message of ``kind``, from a login of a random user (the walk is for logins)."""
        pool = self._pool
        event = _event(self._draw(self._rng.choice(pool) if pool else self.uuid4()))
        event.setdefault("device_type", self._rng.choice(self._device_types))
        key = event["user_id"].encode()
        return key, _invalid_payload(kind, event, self._rng)

    def _invalid_kind(self) -> InvalidKind | None:
        """Whether the next message is a deliberately invalid one, and of which kind."""
        if self._invalid_every:
            self._sent += 1
            laps, position = divmod(self._sent, self._invalid_every)
            return _INVALID_KINDS[(laps - 1) % len(_INVALID_KINDS)] if position == 0 else None
        if self._invalid_ratio and self._rng.random() < self._invalid_ratio:
            return self._rng.choice(_INVALID_KINDS)
        return None

    def _draw(self, user_id: str) -> _Login:
        rng = self._rng
        versions = self._versions
        version = versions[0] if len(versions) == 1 else rng.choice(versions)
        octets = rng.randbytes(4)
        ip = f"{_OCTET[octets[0]]}.{_OCTET[octets[1]]}.{_OCTET[octets[2]]}.{_OCTET[octets[3]]}"
        locale = rng.choice(self._locales)
        device = rng.random()
        device_type = (
            None
            if device < self._missing_device_type
            else self._device_types[bisect.bisect(self._device_cuts, device)]
        )
        return user_id, version, ip, locale, self.uuid4(), int(self._clock()), device_type


def _event(login: _Login) -> dict[str, Any]:
    user_id, version, ip, locale, device_id, timestamp, device_type = login
    event: dict[str, Any] = {
        "user_id": user_id,
        "app_version": version,
        "ip": ip,
        "locale": locale,
        "device_id": device_id,
        "timestamp": timestamp,
    }
    if device_type is not None:
        event["device_type"] = device_type
    return event


def _login_json(login: _Login) -> bytes:
    """The JSON of ``_event(login)``, written out: every value is from a known alphabet (hex,
    digits, the mix's checked values), so nothing needs escaping, and it is twice as fast."""
    user_id, version, ip, locale, device_id, timestamp, device_type = login
    device = f',"device_type":"{device_type}"' if device_type else ""
    return (
        f'{{"user_id":"{user_id}","app_version":"{version}","ip":"{ip}",'
        f'"locale":"{locale}","device_id":"{device_id}","timestamp":{timestamp}{device}}}'
    ).encode()


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
