"""A corpus of hostile login payloads, each with the verdict the spec gives it, reached here
independently of the code under test: the standard library's UTF-8 decoder and a strict use of
``json`` stand in for the worker's msgspec validation.

The spec (section 3): a message is valid when it is a UTF-8 JSON object whose fields
``user_id``, ``app_version``, ``ip``, ``locale``, ``device_type`` are non-empty strings (not only
whitespace, at most --max-field-bytes UTF-8 bytes) and ``timestamp`` is a number; anything else
is invalid with a stable code. Where the spec is silent
this file says what it holds, and why:

* precedence, when a payload has several defects: size, then encoding, then JSON, then shape
  (not an object, missing fields, wrong types, empty values, values too long), the order a
  reader meets them in; a blank value is empty whatever its length;
* whitespace is what Python's ``str.isspace`` says it is (Unicode White_Space and the four
  ASCII separators \x1c-\x1f);
* JSON is RFC 8259 JSON: no NaN/Infinity literals, no BOM, no unescaped control characters;
  strings must be representable in UTF-8 (no unpaired surrogate escapes, as in I-JSON,
  RFC 7493 section 2.1), and numbers must fit a double (RFC 8259 section 6 lets a parser limit
  their range);
* duplicate names: the last one wins, as with Python's json, JavaScript's JSON.parse and
  Jackson's default, so every consumer of the topic agrees on what the message says.
"""

from __future__ import annotations

import json
import math
import random
import string
import uuid
from collections.abc import Callable
from typing import Any

from loginmetrics.cli.traffic import PlannedMessage

MAX_MESSAGE_BYTES = 64 * 1024  # the worker runs with --max-message-bytes set to this
MAX_FIELD_BYTES = 256  # the worker's default --max-field-bytes
REQUIRED_TEXT_FIELDS = ("user_id", "app_version", "ip", "locale", "device_type")
REQUIRED_FIELDS = (*REQUIRED_TEXT_FIELDS, "timestamp")

# Byte sequences no UTF-8 decoder may accept (Unicode 15, table 3-7).
INVALID_UTF8 = (
    b"\xff",  # never appears in UTF-8
    b"\xc0\xaf",  # overlong "/"
    b"\xe0\x80\xaf",  # overlong, three bytes
    b"\xed\xa0\x80",  # an encoded surrogate (U+D800)
    b"\xf4\x90\x80\x80",  # beyond U+10FFFF
    b"\xf8\x88\x80\x80\x80",  # a five-byte form
    b"\x80",  # a lone continuation byte
    b"\xe2\x82",  # a sequence cut short
    b"\xc3",  # a lead byte at the end of a string
)


class _NotJsonError(ValueError):
    pass


def _no_constants(name: str) -> Any:
    raise _NotJsonError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise _NotJsonError(f"{text} is out of the range of a double")
    return number


def _all_strings_utf8(document: Any) -> bool:
    pending = [document]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            texts = [item]
        elif isinstance(item, dict):
            texts = list(item)
            pending.extend(item.values())
        elif isinstance(item, list):
            texts = []
            pending.extend(item)
        else:
            continue
        for text in texts:
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                return False
    return True


def reference_verdict(
    value: bytes | None, max_bytes: int = MAX_MESSAGE_BYTES
) -> tuple[str | None, Any]:
    """(error code, or None for a valid login; the parsed JSON document if there is one)."""
    if value is None:
        return "not_an_object", None  # a tombstone
    if len(value) > max_bytes:
        return "too_large", None
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        return "invalid_encoding", None
    try:
        document = json.loads(text, parse_constant=_no_constants, parse_float=_finite_float)
    except (ValueError, RecursionError):
        return "invalid_json", None
    if not _all_strings_utf8(document):
        return "invalid_json", None
    if not isinstance(document, dict):
        return "not_an_object", document
    if any(name not in document for name in REQUIRED_FIELDS):
        return "missing_fields", document
    if any(not isinstance(document[name], str) for name in REQUIRED_TEXT_FIELDS):
        return "wrong_type", document
    timestamp = document["timestamp"]
    if isinstance(timestamp, bool) or not isinstance(timestamp, int | float):
        return "wrong_type", document
    if any(document[name].strip() == "" for name in REQUIRED_TEXT_FIELDS):
        return "empty_value", document
    if any(len(document[name].encode()) > MAX_FIELD_BYTES for name in REQUIRED_TEXT_FIELDS):
        return "value_too_long", document
    return None, document


class CorpusBuilder:
    """Generates payloads by kind; every one is judged by ``reference_verdict``, and where a kind
    means a certain verdict the builder checks it got that one (a check of the generator)."""

    def __init__(self, seed: int, max_bytes: int = MAX_MESSAGE_BYTES) -> None:
        self.rng = random.Random(seed)
        self.max_bytes = max_bytes
        self.messages: list[PlannedMessage] = []

    # -- building blocks -------------------------------------------------------------------

    def login(self) -> dict[str, Any]:
        rng = self.rng
        return {
            "user_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "app_version": rng.choice(("2.3.0", "2.4.1", "3.0.0")),
            "ip": ".".join(str(rng.randrange(256)) for _ in range(4)),
            "locale": rng.choice(("TX", "OH", "CA", "NY", "LA")),
            "device_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "timestamp": 1_736_653_976 + rng.randrange(100_000),
            "device_type": rng.choice(("android", "iOS")),
        }

    def dumps(self, document: Any) -> bytes:
        return json.dumps(document, ensure_ascii=self.rng.random() < 0.5).encode()

    def raw_object(self, pairs: list[tuple[str, str]]) -> bytes:
        """An object from (name, raw JSON value) pairs, duplicates and all."""
        return ("{" + ", ".join(f"{json.dumps(k)}: {v}" for k, v in pairs) + "}").encode()

    def login_pairs(self, **raw: str) -> list[tuple[str, str]]:
        pairs = [(k, json.dumps(v)) for k, v in self.login().items()]
        return [(k, raw.pop(k, v)) for k, v in pairs] + list(raw.items())

    def add(self, kind: str, value: bytes | None, meant: str | bool | None = False) -> None:
        """Add a payload; ``meant`` (a code, or None for valid) is checked when given."""
        code, document = reference_verdict(value, self.max_bytes)
        if meant is not False:
            assert code == meant, f"{kind}: generated {value!r:.200} is {code}, meant {meant}"
        event = document if code is None else None
        key = f"{kind}-{len(self.messages)}".encode()
        self.messages.append(PlannedMessage(key, value, code, event, kind))

    def repeat(self, count: int, make: Callable[[], None]) -> None:
        for _ in range(count):
            make()

    # -- kinds of hostile payload -----------------------------------------------------------

    def random_bytes(self) -> None:
        self.add("random-bytes", self.rng.randbytes(self.rng.randrange(1, 3000)))

    def random_text(self) -> None:
        alphabet = '{}[]":,.-+eE0123456789 tfnulasr\\/\n\t' + string.ascii_letters + "é€😀"
        text = "".join(self.rng.choices(alphabet, k=self.rng.randrange(1, 400)))
        self.add("random-text", text.encode())

    def mutated_login(self) -> None:
        rng = self.rng
        data = bytearray(self.dumps(self.login()))
        for _ in range(rng.randrange(1, 6)):
            at = rng.randrange(len(data))
            byte = rng.choice((rng.randrange(256), *b'{}[]":,\\e0'))
            match rng.randrange(3):
                case 0:
                    data[at] = byte
                case 1:
                    data.insert(at, byte)
                case _:
                    del data[at]
        self.add("mutated-login", bytes(data))

    def truncated_login(self) -> None:
        data = self.dumps(self.login())
        self.add("truncated-login", data[: self.rng.randrange(len(data) - 1)], "invalid_json")

    def invalid_utf8(self) -> None:
        rng = self.rng
        bad = rng.choice(INVALID_UTF8).decode("latin-1")
        name = rng.choice((*REQUIRED_TEXT_FIELDS, "device_id", "note"))
        login = self.login()
        text = str(login.get(name, "x"))
        cut = rng.randrange(len(text) + 1)
        login[name] = text[:cut] + "\x00MARK\x00" + text[cut:]
        data = json.dumps(login).encode().replace(b"\\u0000MARK\\u0000", bad.encode("latin-1"))
        self.add("invalid-utf8", data, "invalid_encoding")

    def deep_nesting(self) -> None:
        rng = self.rng
        depth = rng.randrange(2_000, 10_000)  # far beyond any parser's limit, within 64 KB
        match rng.randrange(4):
            case 0:
                self.add("deep-nesting", b"[" * depth + b"]" * depth, "invalid_json")
            case 1:
                self.add("deep-nesting", b'{"a":' * depth + b"1" + b"}" * depth, "invalid_json")
            case 2:
                nested = "[" * depth + "]" * depth
                self.add(
                    "deep-nesting", self.raw_object(self.login_pairs(x=nested)), "invalid_json"
                )
            case _:  # shallow nesting in an extra field is just data
                shallow = rng.randrange(1, 50)
                self.add(
                    "deep-nesting",
                    self.raw_object(self.login_pairs(x="[" * shallow + "]" * shallow)),
                    None,
                )

    def huge_string(self) -> None:
        rng = self.rng
        login = self.login()
        match rng.randrange(4):
            case 0:  # under the message limit, far over the field limit
                login[rng.choice(REQUIRED_TEXT_FIELDS)] = "x" * rng.randrange(20_000, 60_000)
                self.add("huge-string", self.dumps(login), "value_too_long")
            case 1:
                login["note"] = "y" * rng.randrange(70_000, 200_000)
                self.add("huge-string", self.dumps(login), "too_large")
            case 2:
                self.add(
                    "huge-string", self.dumps("z" * rng.randrange(10_000, 60_000)), "not_an_object"
                )
            case _:
                login["k" * rng.randrange(10_000, 40_000)] = 1
                self.add("huge-string", self.dumps(login), None)

    def number_as_string(self) -> None:
        rng = self.rng
        login = self.login()
        match rng.randrange(3):
            case 0:
                login["timestamp"] = rng.choice(
                    (str(login["timestamp"]), "1.7e9", " 1736653976", "0x67826E18", "")
                )
            case 1:
                login[rng.choice(REQUIRED_TEXT_FIELDS)] = rng.choice((42, 2.5, -1, 10**20))
            case _:
                login["ip"] = rng.randrange(2**32)
        self.add("number-as-string", self.dumps(login), "wrong_type")

    def nan_or_infinity(self) -> None:
        rng = self.rng
        literal = rng.choice(("NaN", "Infinity", "-Infinity"))
        name = rng.choice((*REQUIRED_FIELDS, "device_id", "extra"))
        if rng.random() < 0.8:
            self.add(
                "nan-infinity", self.raw_object(self.login_pairs(**{name: literal})), "invalid_json"
            )
        else:  # the same words as strings are text: wrong for the timestamp only
            code = "wrong_type" if name == "timestamp" else None
            self.add(
                "nan-infinity",
                self.raw_object(self.login_pairs(**{name: json.dumps(literal)})),
                code,
            )

    def duplicate_keys(self) -> None:
        rng = self.rng
        name = rng.choice(REQUIRED_FIELDS)
        good = json.dumps(self.login()[name])
        bad, bad_code = rng.choice(
            (
                ("null", "wrong_type"),
                ("5", "wrong_type"),
                ('""', "empty_value"),
                ("[]", "wrong_type"),
            )
            if name != "timestamp"
            else (("null", "wrong_type"), ('"5"', "wrong_type"), ("true", "wrong_type"))
        )
        if name != "timestamp" and bad == '""':
            bad_code = "empty_value"
        pairs = self.login_pairs()
        match rng.randrange(3):
            case 0:  # a bad value, then a good one: the good one stands
                pairs.insert(0, (name, bad))
                pairs.append((name, good))
                self.add("duplicate-keys", self.raw_object(pairs), None)
            case 1:  # a good value, then a bad one: the bad one stands
                pairs.append((name, bad))
                self.add("duplicate-keys", self.raw_object(pairs), bad_code)
            case _:  # two good values: the last one is counted
                pairs.append((name, good))
                self.add("duplicate-keys", self.raw_object(pairs), None)

    def null_value(self) -> None:
        rng = self.rng
        match rng.randrange(4):
            case 0 | 1:
                pairs = self.login_pairs(**{rng.choice(REQUIRED_FIELDS): "null"})
                self.add("null-value", self.raw_object(pairs), "wrong_type")
            case 2:
                self.add("null-value", b"null", "not_an_object")
            case _:  # optional and unknown fields may be null
                pairs = self.login_pairs(**{rng.choice(("device_id", "extra")): "null"})
                self.add("null-value", self.raw_object(pairs), None)

    def tombstone(self) -> None:
        self.add("tombstone", None, "not_an_object")

    def megabyte(self) -> None:
        rng = self.rng
        size = rng.randrange(900_000, 1_100_000)
        match rng.randrange(3):
            case 0:
                value = rng.randbytes(size)
            case 1:
                login = self.login()
                login["note"] = "m" * size
                value = self.dumps(login)
            case _:
                value = b"[" + b"1," * (size // 2) + b"1]"
        self.add("megabyte", value, "too_large")

    def size_boundary(self) -> None:
        login = self.login()
        login["pad"] = ""
        base = len(json.dumps(login).encode())
        extra = self.rng.choice((0, 1))  # exactly the limit: valid; one byte more: too large
        login["pad"] = "p" * (MAX_MESSAGE_BYTES - base + extra)
        self.add("size-boundary", json.dumps(login).encode(), "too_large" if extra else None)

    def not_an_object(self) -> None:
        rng = self.rng
        value = rng.choice(
            (
                [self.login()],
                [],
                rng.randrange(-(10**9), 10**9),
                rng.random(),
                "a login",
                True,
                False,
                [[1, 2], {"user_id": "u"}],
            )
        )
        self.add("not-an-object", self.dumps(value), "not_an_object")

    def schema_violation(self) -> None:
        rng = self.rng
        login = self.login()
        match rng.randrange(4):
            case 0:
                for name in rng.sample(REQUIRED_FIELDS, rng.randrange(1, len(REQUIRED_FIELDS))):
                    del login[name]
                self.add("schema", self.dumps(login), "missing_fields")
            case 1:
                for name in rng.sample(REQUIRED_TEXT_FIELDS, rng.randrange(1, 3)):
                    login[name] = ""
                self.add("schema", self.dumps(login), "empty_value")
            case 2:
                login[rng.choice(REQUIRED_TEXT_FIELDS)] = rng.choice(
                    ([], {}, True, ["a"], {"a": 1})
                )
                self.add("schema", self.dumps(login), "wrong_type")
            case _:
                login["timestamp"] = rng.choice((True, False, [], {}, [1736653976]))
                self.add("schema", self.dumps(login), "wrong_type")

    def lone_surrogate(self) -> None:
        escape = self.rng.choice(("\\ud800", "\\udfff", "\\ud83d x", "\\ude00"))
        name = self.rng.choice((*REQUIRED_TEXT_FIELDS, "device_id"))
        pairs = self.login_pairs(**{name: f'"a{escape}b"'})
        self.add("lone-surrogate", self.raw_object(pairs), "invalid_json")

    def whitespace_and_bom(self) -> None:
        data = self.dumps(self.login())
        match self.rng.randrange(3):
            case 0:
                self.add("bom", b"\xef\xbb\xbf" + data, "invalid_json")
            case 1:
                self.add("whitespace", b" \t\r\n" + data + b"\n ", None)
            case _:
                self.add("whitespace", b"\x0c" + data + b"\x0b", "invalid_json")

    def exotic_valid(self) -> None:
        rng = self.rng
        login = self.login()
        login[rng.choice(REQUIRED_TEXT_FIELDS)] = rng.choice(
            (
                "😀 emoji",
                "ünïcödé",
                "日本語",
                "tab\there",
                "nul\x00byte",
                'quote"back\\slash',
                " a ",
            )
        )
        login["timestamp"] = rng.choice((1.5, -1, 0, 10**20, 1e300, login["timestamp"]))
        self.add("exotic-valid", self.dumps(login), None)

    def blank_value(self) -> None:
        rng = self.rng
        login = self.login()
        blank = "".join(
            rng.choices(" \t\n\r\x0b\x0c\x1c\x85\xa0\u2003\u3000", k=rng.randrange(1, 400))
        )
        login[rng.choice(REQUIRED_TEXT_FIELDS)] = blank
        self.add("blank-value", self.dumps(login), "empty_value")

    def field_limit(self) -> None:
        """Required strings at the field limit (valid) or one byte over it, in 1- to 4-byte
        characters, raw or escaped."""
        rng = self.rng
        login = self.login()
        char = rng.choice(("v", "é", "€", "😀"))
        width = len(char.encode())
        over = rng.random() < 0.5
        text = char * (MAX_FIELD_BYTES // width)
        text += "x" * (MAX_FIELD_BYTES - len(text.encode()) + (1 if over else 0))
        login[rng.choice(REQUIRED_TEXT_FIELDS)] = text
        self.add("field-limit", self.dumps(login), "value_too_long" if over else None)

    def plain_login(self) -> None:
        self.add("login", self.dumps(self.login()), None)

    # -- floods: valid, or growing when re-encoded, in bulk ------------------------------------

    def new_version(self) -> None:
        """A valid login with an app_version no other message has (a build id put there)."""
        login = self.login()
        login["app_version"] = f"2.3.0+build.{len(self.messages)}.{self.rng.getrandbits(32):08x}"
        self.add("new-version", self.dumps(login), None)

    def long_user_id(self) -> None:
        """A 60 kB user_id: under the message limit, over the field limit."""
        login = self.login()
        login["user_id"] = self.rng.choice("ab") * 60_000
        self.add("long-user-id", self.dumps(login), "value_too_long")

    def control_characters(self) -> None:
        """~300 kB that grow when a dead letter re-encodes them: raw control characters (each
        escapes to six bytes), or numbers that print longer (1e15 -> 1000000000000000.0)."""
        rng = self.rng
        size = rng.randrange(290_000, 310_000)
        match rng.randrange(5):
            case 0:
                self.add("controls", b"\x01" * size, "invalid_json")
            case 1:
                self.add("controls", b'{"note": "' + b"\x01" * size + b'"}', "invalid_json")
            case 2:
                value = b'{"note": "' + b"\\u0001" * (size // 6) + b'"}'
                self.add("controls", value, "missing_fields")
            case 3:
                self.add("controls", b'{"n": [' + b"1e15," * (size // 5) + b"1]}", "missing_fields")
            case _:  # a valid login carrying them in an extra field
                login = self.login()
                login["note"] = "\x01" * (size // 6)
                self.add("controls", json.dumps(login).encode(), None)


def hostile_corpus(seed: int = 5) -> list[PlannedMessage]:
    """~10,700 hostile payloads and ~7,700 valid logins, shuffled together."""
    corpus = CorpusBuilder(seed)
    for count, kind in (
        (2_000, corpus.random_bytes),
        (700, corpus.random_text),
        (2_000, corpus.mutated_login),
        (600, corpus.truncated_login),
        (800, corpus.invalid_utf8),
        (300, corpus.deep_nesting),
        (300, corpus.huge_string),
        (800, corpus.number_as_string),
        (400, corpus.nan_or_infinity),
        (600, corpus.duplicate_keys),
        (600, corpus.null_value),
        (300, corpus.tombstone),
        (30, corpus.megabyte),
        (20, corpus.size_boundary),
        (700, corpus.not_an_object),
        (1_300, corpus.schema_violation),
        (100, corpus.lone_surrogate),
        (150, corpus.whitespace_and_bom),
        (300, corpus.exotic_valid),
        (300, corpus.blank_value),
        (300, corpus.field_limit),
        (6_000, corpus.plain_login),
    ):
        corpus.repeat(count, kind)
    corpus.rng.shuffle(corpus.messages)
    return corpus.messages


def flood(
    make: str, count: int, logins: int, seed: int, max_bytes: int = MAX_MESSAGE_BYTES
) -> list[PlannedMessage]:
    """``count`` messages of one flood kind (a ``CorpusBuilder`` method) among ``logins`` plain
    logins, shuffled together."""
    corpus = CorpusBuilder(seed, max_bytes)
    corpus.repeat(count, getattr(corpus, make))
    corpus.repeat(logins, corpus.plain_login)
    corpus.rng.shuffle(corpus.messages)
    return corpus.messages
