"""Dead letters: the schema of the spec, with the payload kept in a form an operator can use."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import msgspec
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from loginmetrics.worker.dead_letter import (
    DEAD_LETTER_MAX_BYTES,
    EXCERPT_BYTES,
    TOO_LARGE_EXCERPT_BYTES,
    dead_letter,
    encode_dead_letter,
)
from loginmetrics.worker.fold import RejectedRecord
from loginmetrics.worker.validation import ErrorCode, Rejection, validate

PROCESSED_AT = datetime(2025, 1, 21, 0, 57, 57, 632598, tzinfo=UTC)
TOPIC = "user-login"


def rejected(
    value: bytes | None,
    partition: int = 3,
    offset: int = 18211,
    timestamp_ms: int | None = 1737421077000,
    max_bytes: int = 64 * 1024,
) -> RejectedRecord:
    result = validate(value, max_bytes)
    assert isinstance(result, Rejection), f"{value!r} is a valid login"
    return RejectedRecord(partition, offset, timestamp_ms, value, result)


def letter_of(value: bytes | None, **kwargs: Any) -> dict[str, Any]:
    """The dead letter as a consumer of the DLQ topic reads it back."""
    decoded: dict[str, Any] = json.loads(
        encode_dead_letter(rejected(value, **kwargs), TOPIC, PROCESSED_AT)
    )
    return decoded


def test_the_dead_letter_of_the_spec() -> None:
    message = {
        "user_id": "9f7c",
        "app_version": "2.3.0",
        "ip": "1.2.3.4",
        "locale": "TX",
        "timestamp": 1737421077,
    }
    assert letter_of(json.dumps(message).encode()) == {
        "topic_name": "user-login",
        "message": message,
        "error": "Missing required fields: ['device_type']",
        "error_code": "missing_fields",
        "processed_at_utc": "2025-01-21T00:57:57.632598",
        "source": {"partition": 3, "offset": 18211, "timestamp_ms": 1737421077000},
    }


def test_processed_at_is_written_in_utc_whatever_the_clock_zone() -> None:
    paris = PROCESSED_AT.astimezone(timezone(timedelta(hours=1)))
    letter = dead_letter(rejected(b"[]"), TOPIC, paris)
    assert letter["processed_at_utc"] == "2025-01-21T00:57:57.632598"


def test_a_record_without_broker_timestamp_says_so() -> None:
    assert letter_of(b"[]", timestamp_ms=None)["source"]["timestamp_ms"] is None


def test_a_json_object_is_kept_parsed() -> None:
    letter = letter_of(b'{"user_id": 42, "nested": {"a": [1, 2.5, null]}}')
    assert letter["error_code"] == "missing_fields"
    assert letter["message"] == {"user_id": 42, "nested": {"a": [1, 2.5, None]}}
    assert "message_base64" not in letter


def test_an_object_with_a_wrong_field_is_kept_parsed() -> None:
    document = {
        "user_id": "u",
        "app_version": "1",
        "ip": "i",
        "locale": "l",
        "device_type": "d",
        "timestamp": True,
    }
    letter = letter_of(json.dumps(document).encode())
    assert letter["error_code"] == "wrong_type"
    assert letter["message"] == document


def test_malformed_json_is_kept_as_text() -> None:
    letter = letter_of('{"user_id": "ü", '.encode())
    assert letter["error_code"] == "invalid_json"
    assert letter["message"] == '{"user_id": "ü", '
    assert "message_base64" not in letter


def test_json_that_is_not_an_object_is_kept_as_text() -> None:
    letter = letter_of(b'[{"user_id": "u"}]')
    assert letter["error_code"] == "not_an_object"
    assert letter["message"] == '[{"user_id": "u"}]'


def test_a_payload_that_is_not_utf8_is_kept_in_base64() -> None:
    value = b'{"user_id": "\xff\xfe"}'
    letter = letter_of(value)
    assert letter["error_code"] == "invalid_encoding"
    assert letter["message"] is None
    assert base64.b64decode(letter["message_base64"]) == value


def test_a_tombstone_has_no_message() -> None:
    letter = letter_of(None)
    assert letter["error_code"] == "not_an_object"
    assert letter["message"] is None
    assert "message_base64" not in letter


def test_a_too_large_payload_keeps_an_excerpt_and_its_size() -> None:
    value = json.dumps({"user_id": "u", "padding": "x" * 5000}).encode()
    letter = letter_of(value, max_bytes=1000)
    assert letter["error_code"] == "too_large"
    assert letter["message_truncated"] is True
    assert letter["message_bytes"] == len(value)
    assert letter["message"] == value[:TOO_LARGE_EXCERPT_BYTES].decode()


def test_a_too_large_text_cut_inside_a_character_stays_text() -> None:
    value = b"a" + "é".encode() * 3000  # the excerpt ends in the middle of an é
    letter = letter_of(value, max_bytes=1000)
    assert letter["error_code"] == "too_large"
    assert "message_base64" not in letter
    assert letter["message"] == "a" + "é" * ((TOO_LARGE_EXCERPT_BYTES - 1) // 2)


def test_a_too_large_binary_payload_keeps_a_base64_excerpt() -> None:
    value = bytes(range(256)) * 20
    letter = letter_of(value, max_bytes=1000)
    assert letter["message"] is None
    assert base64.b64decode(letter["message_base64"]) == value[:TOO_LARGE_EXCERPT_BYTES]
    assert letter["message_bytes"] == len(value)


def test_a_too_large_payload_under_the_excerpt_size_is_kept_whole() -> None:
    value = b'{"user_id": "' + b"x" * 100 + b'"}'
    letter = letter_of(value, max_bytes=50)
    assert letter["message"] == value.decode()
    assert letter["message_bytes"] == len(value)


def test_a_document_with_huge_numbers_still_encodes() -> None:
    letter = letter_of(b'{"user_id": 123456789012345678901234567890, "timestamp": 1e308}')
    assert letter["message"] == {"user_id": 123456789012345678901234567890, "timestamp": 1e308}


@given(
    st.one_of(st.binary(max_size=200), st.text(max_size=100).map(str.encode)),
    st.integers(0, 1000),
    st.integers(0, 2**63 - 1),
)
def test_every_dead_letter_is_json_and_keeps_the_payload(
    value: bytes, partition: int, offset: int
) -> None:
    result = validate(value, 150)
    if not isinstance(result, Rejection):
        return
    encoded = encode_dead_letter(
        RejectedRecord(partition, offset, None, value, result), TOPIC, PROCESSED_AT
    )
    letter = json.loads(encoded)
    assert letter["source"] == {"partition": partition, "offset": offset, "timestamp_ms": None}
    assert letter["error_code"] == result.code.value
    assert letter["error"] == result.error
    kept = value[:TOO_LARGE_EXCERPT_BYTES]
    if isinstance(letter["message"], dict):
        assert letter["message"] == json.loads(value)
    elif letter["message"] is not None:
        assert kept.startswith(letter["message"].encode())
        if not letter.get("message_truncated"):
            assert letter["message"].encode() == value
    else:
        assert base64.b64decode(letter["message_base64"]) == kept


def test_a_payload_over_the_kept_size_is_excerpted_whatever_its_code() -> None:
    # With --max-message-bytes raised, an invalid message can be larger than the DLQ accepts.
    value = b"[" + b"1," * DEAD_LETTER_MAX_BYTES + b"1]"
    rejected = RejectedRecord(
        0, 7, None, value, Rejection(ErrorCode.NOT_AN_OBJECT, "Payload is an array")
    )
    letter = dead_letter(rejected, "user-login", datetime(2026, 1, 1, tzinfo=UTC))

    assert letter["message_truncated"] is True
    assert letter["message_bytes"] == len(value)
    assert letter["message"] == value[:EXCERPT_BYTES].decode()
    assert len(encode_dead_letter(rejected, "user-login", datetime.now(UTC))) < 70_000


@pytest.mark.parametrize(
    ("value", "code"),
    [
        # 300 kB of raw control characters: not JSON, kept as text, 1.8 MB once escaped
        pytest.param(b"\x01" * 300_000, "invalid_json", id="raw-controls"),
        pytest.param(b'{"note": "' + b"\x01" * 300_000 + b'"}', "invalid_json", id="in-a-string"),
        # an object re-encoded: 1e15 becomes 1000000000000000.0
        pytest.param(b'{"n": [' + b"1e15," * 80_000 + b"1]}", "missing_fields", id="numbers"),
        # escapes that stay escapes, over the bound as they are
        pytest.param(
            b'{"note": "' + b"\\u0001" * 100_000 + b'"}', "missing_fields", id="escaped-controls"
        ),
        pytest.param(bytes(range(128, 256)) * 3_600, "invalid_encoding", id="binary-base64"),
    ],
)
def test_a_letter_that_would_not_fit_keeps_an_excerpt_and_the_length(
    value: bytes, code: str
) -> None:
    encoded = encode_dead_letter(rejected(value, max_bytes=1_100_000), TOPIC, PROCESSED_AT)
    letter = json.loads(encoded)

    assert len(encoded) <= DEAD_LETTER_MAX_BYTES
    assert letter["error_code"] == code
    assert letter["source"] == {"partition": 3, "offset": 18211, "timestamp_ms": 1737421077000}
    assert letter["message_truncated"] is True
    assert letter["message_bytes"] == len(value)
    if letter["message"] is None:
        assert base64.b64decode(letter["message_base64"]) == value[:EXCERPT_BYTES]
    else:
        assert letter["message"].encode() == value[:EXCERPT_BYTES]


def test_a_letter_that_fits_keeps_the_whole_payload() -> None:
    document = {"note": "\x01" * 80_000}  # 480 kB once re-encoded: fits
    letter = letter_of(json.dumps(document).encode(), max_bytes=1_100_000)
    assert letter["message"] == document
    assert "message_truncated" not in letter
    value = b"\x01" * 80_000  # not JSON: kept as text, 480 kB once escaped
    letter = letter_of(value, max_bytes=1_100_000)
    assert (letter["error_code"], letter["message"]) == ("invalid_json", value.decode())
    assert "message_truncated" not in letter


# Fragments that grow when the letter re-encodes them, or that are not text at all.
_GROWING = [b"\x01", b"\\u0001", b"1e15,", b"1E2,", b"[", b"\xff", b"\xe2\x82", b"\x00", b'\\"']


@st.composite
def hostile_payloads(draw: st.DrawFn) -> tuple[bytes, int]:
    """(payload, --max-message-bytes): up to 1.1 MB, either side of the limit."""
    # Sizes drawn around the interesting ones: hypothesis alone would stay small.
    sizes = st.sampled_from([0, 1_000, 90_000, 200_000, 400_000, 900_000, 1_050_000])
    max_bytes = draw(st.sampled_from([100, 64 * 1024, 400_000, 1_100_000]))
    unit = draw(st.sampled_from(_GROWING) | st.binary(min_size=1, max_size=8))
    body = unit * ((draw(sizes) + draw(st.integers(0, 1_000))) // len(unit))
    wrap = draw(st.sampled_from(["raw", "object", "array"]))
    if wrap == "object":
        return b'{"user_id": "' + body + b'", "x": 1}', max_bytes
    if wrap == "array":
        return b"[" + body + b"]", max_bytes
    return body, max_bytes


@settings(max_examples=100, deadline=None)
@given(hostile_payloads(), st.integers(0, 10_000), st.integers(0, 2**63 - 1))
def test_no_payload_makes_a_dead_letter_over_the_bound(
    payload: tuple[bytes, int], partition: int, offset: int
) -> None:
    value, max_bytes = payload
    result = validate(value, max_bytes)
    if not isinstance(result, Rejection):  # dead-letter it anyway: only the bound is at stake
        result = Rejection(ErrorCode.WRONG_TYPE, "forced", msgspec.json.decode(value))
    encoded = encode_dead_letter(
        RejectedRecord(partition, offset, None, value, result), TOPIC, PROCESSED_AT
    )

    assert len(encoded) <= DEAD_LETTER_MAX_BYTES
    letter = json.loads(encoded)
    assert letter["source"] == {"partition": partition, "offset": offset, "timestamp_ms": None}
    assert letter["error_code"] == result.code.value
    event(f"truncated: {bool(letter.get('message_truncated'))}, {result.code.value}")
    if letter.get("message_truncated"):
        assert letter["message_bytes"] == len(value)
    kept = (
        base64.b64decode(letter["message_base64"])
        if "message_base64" in letter
        else None
        if isinstance(letter["message"], dict)
        else letter["message"].encode()
    )
    if kept is not None:
        assert value.startswith(kept)
