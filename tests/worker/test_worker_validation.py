"""Validation: every valid login is accepted and every bad message gets its stable error code."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loginmetrics.worker.validation import (
    DEFAULT_MAX_FIELD_BYTES,
    REQUIRED_FIELDS,
    REQUIRED_TEXT_FIELDS,
    ErrorCode,
    LoginEvent,
    Rejection,
    classify,
    validate,
)

LOGIN: dict[str, Any] = {
    "user_id": "ac853026-90a7-4c4d-9aad-98fc851f97a7",
    "app_version": "2.3.0",
    "ip": "157.156.46.154",
    "locale": "LA",
    "device_id": "cf654cc7-2e68-463c-b0f4-7d21b068d687",
    "timestamp": 1736653976,
    "device_type": "android",
}
# classify's answer for a document it finds nothing wrong with (only the fast decoder refused it)
NOTHING_WRONG = "Document refused by the event decoder"


def payload(document: Any) -> bytes:
    return json.dumps(document).encode()


def login(**changes: Any) -> dict[str, Any]:
    return {**LOGIN, **changes}


def without(*names: str) -> dict[str, Any]:
    return {k: v for k, v in LOGIN.items() if k not in names}


def rejection(value: bytes | None, max_bytes: int | None = None) -> Rejection:
    result = validate(value) if max_bytes is None else validate(value, max_bytes)
    assert isinstance(result, Rejection), f"{value!r} was accepted"
    return result


def expected_code(document: Any, max_field_bytes: int = 256) -> ErrorCode | None:
    """The spec's rules, written independently of the code under test (None: valid)."""
    if not isinstance(document, dict):
        return ErrorCode.NOT_AN_OBJECT
    if any(name not in document for name in REQUIRED_FIELDS):
        return ErrorCode.MISSING_FIELDS
    if any(not isinstance(document[name], str) for name in REQUIRED_TEXT_FIELDS):
        return ErrorCode.WRONG_TYPE
    timestamp = document["timestamp"]
    if (
        isinstance(timestamp, bool)
        or not isinstance(timestamp, int | float)
        or not math.isfinite(timestamp)
    ):
        return ErrorCode.WRONG_TYPE
    if any(document[name].strip() == "" for name in REQUIRED_TEXT_FIELDS):
        return ErrorCode.EMPTY_VALUE
    if any(len(document[name].encode()) > max_field_bytes for name in REQUIRED_TEXT_FIELDS):
        return ErrorCode.VALUE_TOO_LONG
    return None


# -- valid logins ----------------------------------------------------------------------------


def test_the_login_of_the_spec_is_a_valid_event() -> None:
    event = validate(payload(LOGIN))
    assert event == LoginEvent(
        user_id=LOGIN["user_id"],
        app_version="2.3.0",
        ip="157.156.46.154",
        locale="LA",
        device_type="android",
        timestamp=1736653976,
    )


@pytest.mark.parametrize(
    "document",
    [
        pytest.param(without("device_id"), id="no-device_id"),
        pytest.param(login(referrer="ad", nested={"a": [1, None, True]}), id="extra-fields"),
        pytest.param(login(timestamp=1736653976.123), id="float-timestamp"),
        pytest.param(login(timestamp=0), id="zero-timestamp"),
        pytest.param(login(timestamp=-1.5), id="negative-timestamp"),
        pytest.param(login(timestamp=10**30), id="huge-int-timestamp"),
        pytest.param(login(locale="Zürich", device_type="📱", user_id="用户"), id="unicode"),
        pytest.param(login(user_id=" a "), id="whitespace-around-a-value"),
        pytest.param(login(user_id="u" * 256), id="exactly-max-field-bytes"),
        pytest.param(login(locale="é" * 128), id="exactly-max-field-bytes-of-two-byte-chars"),
        pytest.param(login(user_id="\x01"), id="a-control-character-is-not-blank"),
        pytest.param(login(device_id=None), id="null-device_id"),
    ],
)
def test_valid_variations_are_accepted(document: dict[str, Any]) -> None:
    event = validate(payload(document))
    assert isinstance(event, LoginEvent)
    assert event.user_id == document["user_id"]
    assert event.device_type == document["device_type"]
    assert event.timestamp == document["timestamp"]


def test_unicode_values_are_accepted_raw_and_escaped() -> None:
    document = login(locale="Île-de-France", device_type="iOS 😀")
    raw = json.dumps(document, ensure_ascii=False).encode()
    escaped = json.dumps(document, ensure_ascii=True).encode()
    assert validate(raw) == validate(escaped)
    assert isinstance(validate(raw), LoginEvent)
    assert validate(raw).device_type == "iOS 😀"  # type: ignore[union-attr]


def test_whitespace_around_the_object_is_fine() -> None:
    assert isinstance(validate(b" \n" + payload(LOGIN) + b"\r\n "), LoginEvent)


def test_a_payload_of_exactly_max_bytes_is_accepted() -> None:
    value = payload(LOGIN)
    assert isinstance(validate(value, max_bytes=len(value)), LoginEvent)


# -- every error code ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(b"\xff\xfe{}", id="garbage-start"),
        pytest.param(payload(login(user_id="X"))[:-2] + b'\xc3"}', id="truncated-character"),
        pytest.param(b'{"user_id": "\xed\xa0\x80"}', id="encoded-surrogate"),
        pytest.param(
            json.dumps(login(locale="Zürich"), ensure_ascii=False).encode("latin-1"), id="latin-1"
        ),
    ],
)
def test_invalid_utf8_is_invalid_encoding(value: bytes) -> None:
    result = rejection(value)
    assert result.code is ErrorCode.INVALID_ENCODING
    assert result.document is None
    assert "UTF-8" in result.error


def test_invalid_utf8_in_an_ignored_extra_field_is_still_invalid_encoding() -> None:
    # The event decoder skips unknown fields unchecked; the spec wants UTF-8 throughout.
    value = payload(LOGIN)[:-1] + b', "note": "caf\xe9"}'
    assert rejection(value).code is ErrorCode.INVALID_ENCODING
    key = b'{"\xff": 1, ' + payload(LOGIN)[1:]
    assert rejection(key).code is ErrorCode.INVALID_ENCODING


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"   ", id="blank"),
        pytest.param(b"not json", id="text"),
        pytest.param(payload(LOGIN)[:-1], id="truncated-object"),
        pytest.param(payload(LOGIN)[:40], id="truncated-in-string"),
        pytest.param(b"{'user_id': 'u'}", id="single-quotes"),
        pytest.param(payload(LOGIN) + b"{}", id="two-objects"),
        pytest.param(payload(LOGIN)[:-1] + b', "x": NaN}', id="nan-literal"),
        pytest.param(b"\xef\xbb\xbf" + payload(LOGIN), id="byte-order-mark"),
        pytest.param(b'{"user_id": "\\ud800"}', id="lone-surrogate-escape"),
    ],
)
def test_malformed_json_is_invalid_json(value: bytes) -> None:
    result = rejection(value)
    assert result.code is ErrorCode.INVALID_JSON
    assert result.document is None


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (b"[]", "an array"),
        (b"[" + payload(LOGIN) + b"]", "an array"),
        (b"42", "a number"),
        (b"1.5", "a number"),
        (b'"user-login"', "a string"),
        (b"null", "null"),
        (b"true", "a boolean"),
        (b"false", "a boolean"),
    ],
)
def test_json_that_is_not_an_object_is_not_an_object(value: bytes, kind: str) -> None:
    result = rejection(value)
    assert result.code is ErrorCode.NOT_AN_OBJECT
    assert kind in result.error
    assert result.document is None


def test_a_tombstone_is_not_an_object() -> None:
    result = rejection(None)
    assert result.code is ErrorCode.NOT_AN_OBJECT
    assert "tombstone" in result.error


def test_a_missing_field_is_named_in_the_message_of_the_spec() -> None:
    document = without("device_type")
    result = rejection(payload(document))
    assert result.code is ErrorCode.MISSING_FIELDS
    assert result.error == "Missing required fields: ['device_type']"
    assert result.document == document


def test_every_missing_field_is_named_in_schema_order() -> None:
    result = rejection(payload({"locale": "TX", "extra": 1}))
    assert result.code is ErrorCode.MISSING_FIELDS
    assert result.error == (
        "Missing required fields: ['user_id', 'app_version', 'ip', 'device_type', 'timestamp']"
    )
    assert rejection(b"{}").error == f"Missing required fields: {list(REQUIRED_FIELDS)}"


@pytest.mark.parametrize(
    ("document", "field"),
    [
        pytest.param(login(timestamp=True), "timestamp", id="bool-timestamp"),
        pytest.param(login(timestamp=False), "timestamp", id="false-timestamp"),
        pytest.param(login(timestamp="1736653976"), "timestamp", id="string-timestamp"),
        pytest.param(login(timestamp=None), "timestamp", id="null-timestamp"),
        pytest.param(login(timestamp=[1736653976]), "timestamp", id="array-timestamp"),
        pytest.param(login(user_id=12345), "user_id", id="numeric-user_id"),
        pytest.param(login(ip=None), "ip", id="null-ip"),
        pytest.param(login(locale=["TX"]), "locale", id="array-locale"),
        pytest.param(login(device_type={"os": "iOS"}), "device_type", id="object-device_type"),
        pytest.param(login(app_version=2.3), "app_version", id="numeric-app_version"),
        pytest.param(login(user_id=True), "user_id", id="bool-user_id"),
    ],
)
def test_a_field_of_the_wrong_type_is_wrong_type(document: dict[str, Any], field: str) -> None:
    result = rejection(payload(document))
    assert result.code is ErrorCode.WRONG_TYPE
    assert repr(field) in result.error
    assert result.document == document


@pytest.mark.parametrize("timestamp", [b"1e400", b"-1e400"])
def test_a_timestamp_out_of_the_float_range_is_rejected(timestamp: bytes) -> None:
    value = payload(without("timestamp"))[:-1] + b', "timestamp": ' + timestamp + b"}"
    assert isinstance(validate(value), Rejection)


@pytest.mark.parametrize("field", REQUIRED_TEXT_FIELDS)
def test_an_empty_required_string_is_empty_value(field: str) -> None:
    document = login(**{field: ""})
    result = rejection(payload(document))
    assert result.code is ErrorCode.EMPTY_VALUE
    assert result.error == f"Fields must not be empty or whitespace: [{field!r}]"
    assert result.document == document


@pytest.mark.parametrize("blank", [" ", "\t\n\r ", "\u00a0", "\u3000\u2003", "\x1c", " " * 5000])
@pytest.mark.parametrize("field", REQUIRED_TEXT_FIELDS)
@pytest.mark.parametrize("ascii_only", [True, False])
def test_a_whitespace_only_required_string_is_empty_value(
    field: str, blank: str, ascii_only: bool
) -> None:
    # Blank whatever its length: a blank value over --max-field-bytes is empty_value too.
    document = login(**{field: blank})
    result = rejection(json.dumps(document, ensure_ascii=ascii_only).encode())
    assert result.code is ErrorCode.EMPTY_VALUE
    assert result.document == document


@pytest.mark.parametrize("field", REQUIRED_TEXT_FIELDS)
@pytest.mark.parametrize(
    "value",
    [
        pytest.param("u" * 257, id="ascii"),
        pytest.param("é" * 129, id="two-byte-chars-under-the-limit-in-characters"),
        pytest.param("😀" * 65, id="four-byte-chars"),
        pytest.param("x" * 60_000, id="60-kB"),
    ],
)
@pytest.mark.parametrize("ascii_only", [True, False])
def test_a_required_string_over_max_field_bytes_is_value_too_long(
    field: str, value: str, ascii_only: bool
) -> None:
    document = login(**{field: value})
    result = rejection(json.dumps(document, ensure_ascii=ascii_only).encode())
    assert result.code is ErrorCode.VALUE_TOO_LONG
    assert result.error == (
        f"Fields over the limit of 256 UTF-8 bytes: {field} ({len(value.encode())} bytes)"
    )
    assert result.document == document


def test_the_field_limit_is_a_parameter_in_utf8_bytes() -> None:
    short = login(user_id="u", app_version="1", ip="::1", locale="Zürich", device_type="iOS")
    for ascii_only in (True, False):
        value = json.dumps(short, ensure_ascii=ascii_only).encode()
        assert isinstance(validate(value, max_field_bytes=7), LoginEvent)
        # 6 characters, 7 bytes: over a 6-byte limit
        result = validate(value, max_field_bytes=6)
        assert isinstance(result, Rejection)
        assert result.code is ErrorCode.VALUE_TOO_LONG
        assert result.error == "Fields over the limit of 6 UTF-8 bytes: locale (7 bytes)"
    assert DEFAULT_MAX_FIELD_BYTES == 256


def test_optional_and_unknown_fields_have_no_field_limit() -> None:
    assert isinstance(validate(payload(login(device_id="d" * 5000, note=" " * 5000))), LoginEvent)


def test_an_empty_device_id_is_fine_it_is_not_required() -> None:
    assert isinstance(validate(payload(login(device_id=""))), LoginEvent)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(payload(login(note="x" * 200)), id="valid-but-big"),
        pytest.param(b"\xff" * 300, id="garbage"),
        pytest.param(b"[" * 300, id="deep-nesting"),
    ],
)
def test_a_payload_over_max_bytes_is_too_large_whatever_it_holds(value: bytes) -> None:
    result = rejection(value, max_bytes=256)
    assert result.code is ErrorCode.TOO_LARGE
    assert str(len(value)) in result.error
    assert "256" in result.error


def test_the_default_limit_is_64_kib() -> None:
    big = payload(login(note="x" * (64 * 1024)))
    assert rejection(big).code is ErrorCode.TOO_LARGE


def test_deeply_nested_json_does_not_crash() -> None:
    result = rejection(b"[" * 100_000 + b"]" * 100_000, max_bytes=1_000_000)
    assert result.code in (ErrorCode.INVALID_JSON, ErrorCode.NOT_AN_OBJECT)


# -- properties ------------------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
# Blank strings by Python's str.isspace, the definition validation uses.
blank_text = st.text(alphabet=" \t\n\r\x0b\x0c\x1c\x85\xa0\u2000\u3000", min_size=1, max_size=6)
text_field = st.one_of(st.text(min_size=1, max_size=20), st.just(""), blank_text, json_values)
# A field limit small enough for hypothesis to cross it, with one-, two- and four-byte characters.
FIELD_LIMIT = 12
timestamp_field = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    json_values,
)
# Documents near the schema: each required field present or not, valid or broken, plus extras.
login_like = st.builds(
    lambda extras, fields: {**extras, **fields},
    st.dictionaries(st.text(max_size=12), json_values, max_size=4),
    st.fixed_dictionaries(
        {},
        optional={
            **{name: text_field for name in REQUIRED_TEXT_FIELDS},
            "timestamp": timestamp_field,
        },
    ),
)


@given(st.binary(max_size=300))
def test_validate_never_raises_on_arbitrary_bytes(value: bytes) -> None:
    result = validate(value)
    if isinstance(result, LoginEvent):
        document = json.loads(value.decode("utf-8"))
        assert expected_code(document) is None
    else:
        assert isinstance(result, Rejection)
        assert result.code in set(ErrorCode)
        assert result == classify(value)


@given(login_like | json_values, st.booleans())
def test_validate_applies_the_rules_of_the_spec(document: Any, ascii_only: bool) -> None:
    value = json.dumps(document, ensure_ascii=ascii_only).encode()
    result = validate(value, max_bytes=1 << 20, max_field_bytes=FIELD_LIMIT)
    code = expected_code(document, FIELD_LIMIT)
    if code is None:
        assert isinstance(result, LoginEvent)
        assert result.user_id == document["user_id"]
        assert result.timestamp == document["timestamp"]
    else:
        assert isinstance(result, Rejection)
        assert result.code is code
        assert result.document == (document if isinstance(document, dict) else None)


@given(login_like, st.booleans())
def test_the_fast_and_the_slow_path_agree(document: dict[str, Any], ascii_only: bool) -> None:
    # classify only runs where the fast decoder refused; on what validate accepts it must find
    # nothing wrong, and where it finds nothing wrong validate must have accepted.
    value = json.dumps(document, ensure_ascii=ascii_only).encode()
    accepted = isinstance(validate(value, 1 << 20, FIELD_LIMIT), LoginEvent)
    assert accepted == (classify(value, 1 << 20, FIELD_LIMIT).error == NOTHING_WRONG)


@given(st.binary(max_size=40))
def test_a_login_is_valid_exactly_when_all_of_its_bytes_are_utf8(extra: bytes) -> None:
    # Arbitrary bytes inside an ignored string field, kept JSON-wellformed.
    inside = bytes(b for b in extra if b >= 0x20 and b not in b'"\\')
    value = payload(LOGIN)[:-1] + b', "note": "' + inside + b'"}'
    result = validate(value)
    try:
        inside.decode("utf-8")
    except UnicodeDecodeError:
        assert isinstance(result, Rejection)
        assert result.code is ErrorCode.INVALID_ENCODING
    else:
        assert isinstance(result, LoginEvent)
