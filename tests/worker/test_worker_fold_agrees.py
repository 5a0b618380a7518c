"""fold_batch inlines validate()'s fast path: whatever the bytes, both must reach the same
verdict, and for an unusable message the same error code and reason."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from loginmetrics.window.event_time import EventTimePolicy
from loginmetrics.worker.event_fold import WindowClock, fold_event_batch
from loginmetrics.worker.fold import fold_batch
from loginmetrics.worker.validation import LoginEvent, validate
from tests.worker.fake_kafka import FakeMessage

REQUIRED_TEXT = ("user_id", "app_version", "ip", "locale", "device_type")
LOGIN = {
    "user_id": "ac853026-90a7-4c4d-9aad-98fc851f97a7",
    "app_version": "2.3.0",
    "ip": "157.156.46.154",
    "locale": "LA",
    "device_id": "cf654cc7-2e68-463c-b0f4-7d21b068d687",
    "timestamp": 1736653976,
    "device_type": "android",
}

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["", " ", "\t\n", "\u00a0", "é", "😀", "\x00", "x" * 300, "é" * 200]),
    st.sampled_from(["iOS", "2.4.1", "TX", "10.0.0.1", "u-1"]),
)
field_values = st.one_of(json_scalars, st.lists(json_scalars, max_size=3), st.just({}))


@st.composite
def login_like(draw: st.DrawFn) -> bytes:
    """A login whose fields are perturbed: values replaced, fields dropped or added, names
    repeated, then serialised (ASCII or not) and maybe byte-mutated."""
    document: dict[str, Any] = dict(LOGIN)
    for name in draw(st.lists(st.sampled_from([*LOGIN, "extra"]), max_size=3)):
        if draw(st.integers(0, 3)):
            document[name] = draw(field_values)
        else:
            document.pop(name, None)
    text = json.dumps(document, ensure_ascii=draw(st.booleans()), allow_nan=True)
    if draw(st.booleans()):  # a repeated name: its last value is the one that counts
        name = draw(st.sampled_from([*REQUIRED_TEXT, "timestamp"]))
        text = text[:-1] + f", {json.dumps(name)}: {json.dumps(draw(field_values))}}}"
    data = bytearray(text.encode("utf-8", "surrogatepass"))
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2]))):
        at = draw(st.integers(0, len(data) - 1))
        data[at] = draw(st.integers(0, 255))
    return bytes(data)


# Arbitrary bytes, and (as often) near-logins: only those get far into the fast path.
payloads = st.one_of(st.none(), st.binary(max_size=400), login_like(), login_like())


def verdict_of_fold(value: bytes | None, max_bytes: int) -> tuple[str | None, Any]:
    folded = fold_batch([FakeMessage("t", 0, 7, value)], {0: None}, max_bytes)
    assert folded.last_offsets == {0: 7}, "every message is booked"
    if folded.rejected:
        assert len(folded.rejected) == 1
        assert folded.increments.invalid == 1
        assert folded.increments.valid == 0
        rejection = folded.rejected[0].rejection
        return rejection.code.value, rejection.error
    increments = folded.increments
    assert (increments.valid, increments.invalid) == (1, 0)
    return None, (
        increments.users,
        increments.ips,
        dict(increments.devices),
        dict(increments.versions),
        dict(increments.locales),
    )


def verdict_of_validate(value: bytes | None, max_bytes: int) -> tuple[str | None, Any]:
    result = validate(value, max_bytes)
    if isinstance(result, LoginEvent):
        return None, (
            {result.user_id},
            {result.ip},
            {result.device_type: 1},
            {result.app_version: 1},
            {result.locale: 1},
        )
    return result.code.value, result.error


@settings(max_examples=1000, suppress_health_check=[HealthCheck.too_slow])
@given(payloads, st.sampled_from([64 * 1024, 300, 40]))
@example(json.dumps(LOGIN).encode(), 64 * 1024)
@example(
    b'{"user_id": "", "app_version": "1", "ip": "1", "locale": "x", '
    b'"device_type": "iOS", "timestamp": 1}',
    64 * 1024,
)
@example(json.dumps(LOGIN).encode()[:-1] + b', "timestamp": NaN}', 64 * 1024)
@example(json.dumps(LOGIN).encode()[:-1] + b', "note": "\xff"}', 64 * 1024)
def test_fold_and_validate_agree_on_any_bytes(value: bytes | None, max_bytes: int) -> None:
    assert verdict_of_fold(value, max_bytes) == verdict_of_validate(value, max_bytes)


def verdict_of_event_fold(value: bytes | None, max_bytes: int) -> tuple[str | None, Any]:
    """fold_event_batch with no watermark and no limit any timestamp could reach, so only
    validity decides (the late, held and future paths have their own tests)."""
    window_clock = WindowClock(wall=lambda: 1e17)  # the Redis clock, far past most timestamps
    folded = fold_event_batch(
        [FakeMessage("t", 0, 7, value)],
        {0: None},
        {},
        policy=EventTimePolicy(),
        bucket_seconds=1,
        window_clock=window_clock,
        retention_seconds=1e300,
        max_bytes=max_bytes,
    )
    assert folded.last_offsets == {0: 7}, "every message is booked"
    if folded.rejected:
        assert (folded.increments.valid, folded.increments.invalid) == (0, 1)
        rejection = folded.rejected[0].rejection
        return rejection.code.value, rejection.error
    assert (folded.increments.valid, folded.increments.invalid) == (1, 0)
    (increments,) = (folded.buckets or {}).values()
    return None, (
        increments.users,
        increments.ips,
        dict(increments.devices),
        dict(increments.versions),
        dict(increments.locales),
    )


@settings(max_examples=1000, suppress_health_check=[HealthCheck.too_slow])
@given(payloads, st.sampled_from([64 * 1024, 300, 40]))
@example(json.dumps(LOGIN).encode()[:-1] + b', "timestamp": NaN}', 64 * 1024)
@example(json.dumps(LOGIN).encode()[:-1] + b', "timestamp": -Infinity}', 64 * 1024)
@example(json.dumps(LOGIN).encode()[:-1] + b', "timestamp": 1e300}', 64 * 1024)
@example(json.dumps(LOGIN).encode()[:-1] + b', "timestamp": -1e20}', 64 * 1024)
def test_the_event_fold_and_validate_agree_on_any_bytes(
    value: bytes | None, max_bytes: int
) -> None:
    expected = verdict_of_validate(value, max_bytes)
    found = verdict_of_event_fold(value, max_bytes)
    if expected[0] is None and found[0] in ("future_timestamp", "too_late"):
        return  # valid, but a timestamp no window can hold (1e300, -1e20): event time's refusal
    assert found == expected
