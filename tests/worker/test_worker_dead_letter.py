"""Dead letters: the schema of the spec, with the payload kept in a form an operator can use."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from loginmetrics.worker.dead_letter import (
    KEPT_PAYLOAD_BYTES,
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
    value = b"[" + b"1," * KEPT_PAYLOAD_BYTES + b"1]"
    rejected = RejectedRecord(
        0, 7, None, value, Rejection(ErrorCode.NOT_AN_OBJECT, "Payload is an array")
    )
    letter = dead_letter(rejected, "user-login", datetime(2026, 1, 1, tzinfo=UTC))

    assert letter["message_truncated"] is True
    assert letter["message_bytes"] == len(value)
    assert letter["message"] == value[:TOO_LARGE_EXCERPT_BYTES].decode()
    assert len(encode_dead_letter(rejected, "user-login", datetime.now(UTC))) < 4096
