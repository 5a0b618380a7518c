"""The generator's traffic: the original generator's events, seeded, with the promised mix."""

from __future__ import annotations

import ipaddress
import json
import random
import uuid
from collections import Counter
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loginmetrics.cli.traffic import (
    EXPECTED_ERROR_CODE,
    US_STATES,
    VARIED,
    InvalidKind,
    LoginTraffic,
    ValueMix,
    uuid4_batch,
)
from loginmetrics.worker.validation import LoginEvent, Rejection, validate

FIXED_CLOCK = 1_736_653_976.7


def traffic(seed: int, users: int | None = None, invalid_ratio: float = 0.0) -> LoginTraffic:
    return LoginTraffic(seed, users, invalid_ratio, clock=lambda: FIXED_CLOCK)


def events(count: int, seed: int, users: int | None = None) -> list[dict[str, Any]]:
    return [json.loads(value) for _, value in traffic(seed, users).messages(count)]


def test_an_event_has_the_original_generators_fields() -> None:
    key, value = traffic(seed=1).next_message()
    event = json.loads(value)

    assert list(event)[:6] == ["user_id", "app_version", "ip", "locale", "device_id", "timestamp"]
    assert key == event["user_id"].encode()
    assert event["app_version"] == "2.3.0"
    assert event["locale"] in US_STATES
    assert event["timestamp"] == 1_736_653_976  # int epoch seconds
    assert isinstance(ipaddress.ip_address(event["ip"]), ipaddress.IPv4Address)
    assert uuid.UUID(event["user_id"]).version == 4
    assert uuid.UUID(event["device_id"]).version == 4


def test_the_same_seed_gives_the_same_stream_and_another_seed_another() -> None:
    first = traffic(seed=42, users=100, invalid_ratio=0.1).messages(2_000)
    again = traffic(seed=42, users=100, invalid_ratio=0.1).messages(2_000)
    other = traffic(seed=43, users=100, invalid_ratio=0.1).messages(2_000)

    assert first == again
    assert first != other


def test_reading_one_by_one_or_in_chunks_gives_the_same_stream() -> None:
    # uuids are made 1024 at a time; crossing a refill must not change the stream.
    one_by_one = traffic(seed=5)
    chunked = traffic(seed=5)

    assert [one_by_one.next_message() for _ in range(3_000)] == [
        *chunked.messages(1_000),
        *chunked.messages(2_000),
    ]


def test_the_fast_encoding_is_the_json_of_the_event() -> None:
    encoded, built = traffic(seed=9), traffic(seed=9)

    for _ in range(2_000):
        _, value = encoded.next_message()
        assert json.loads(value) == built.login_event()


def test_every_message_has_a_fresh_user_and_device_by_default() -> None:
    sample = events(5_000, seed=2)

    assert len({e["user_id"] for e in sample}) == 5_000
    assert len({e["device_id"] for e in sample}) == 5_000


def test_a_user_pool_repeats_users() -> None:
    sample = events(5_000, seed=2, users=50)

    assert len({e["user_id"] for e in sample}) == 50
    assert len({e["device_id"] for e in sample}) == 5_000


def test_device_type_is_android_or_ios_and_left_out_of_5_percent() -> None:
    devices = Counter(e.get("device_type") for e in events(40_000, seed=3))

    assert set(devices) == {"android", "iOS", None}
    assert devices[None] / 40_000 == pytest.approx(0.05, abs=0.005)
    assert devices["android"] == pytest.approx(devices["iOS"], rel=0.05)


def test_locales_cover_all_50_states_evenly() -> None:
    locales = Counter(e["locale"] for e in events(20_000, seed=4))

    assert set(locales) == set(US_STATES)
    assert len(US_STATES) == len(set(US_STATES)) == 50
    assert min(locales.values()) > 20_000 / 50 * 0.75


def test_ips_use_all_four_octets() -> None:
    octets = [list(map(int, str(e["ip"]).split("."))) for e in events(5_000, seed=6)]

    for position in range(4):
        column = [ip[position] for ip in octets]
        assert min(column) < 10
        assert max(column) > 245


def test_without_invalid_ratio_only_missing_device_type_is_invalid() -> None:
    outcomes = Counter(_outcome(value) for _, value in traffic(seed=8).messages(10_000))

    assert set(outcomes) == {"valid", "missing_fields"}


def test_invalid_ratio_adds_that_share_of_invalid_messages_of_every_kind() -> None:
    outcomes = Counter(
        _outcome(value) for _, value in traffic(seed=8, invalid_ratio=0.2).messages(20_000)
    )

    invalid = 20_000 - outcomes["valid"]
    # 20 % deliberately invalid, plus 5 % of the other 80 % without device_type.
    assert invalid / 20_000 == pytest.approx(0.2 + 0.8 * 0.05, abs=0.01)
    assert set(outcomes) == {"valid", *EXPECTED_ERROR_CODE.values()}


@pytest.mark.parametrize("kind", list(InvalidKind))
def test_each_invalid_kind_is_rejected_with_its_error_code(kind: InvalidKind) -> None:
    source = traffic(seed=11)

    for _ in range(50):
        _, value = source.invalid_message(kind)
        assert _outcome(value) == EXPECTED_ERROR_CODE[kind]


@given(
    seed=st.integers(min_value=0, max_value=2**32),
    users=st.none() | st.integers(min_value=1, max_value=20),
    invalid_ratio=st.floats(min_value=0, max_value=1),
)
def test_any_stream_is_valid_or_rejected_with_a_known_code(
    seed: int, users: int | None, invalid_ratio: float
) -> None:
    known = {"valid", "missing_fields", *EXPECTED_ERROR_CODE.values()}

    for key, value in traffic(seed=seed, users=users, invalid_ratio=invalid_ratio).messages(50):
        assert key
        assert _outcome(value) in known


def test_uuid4_batch_makes_well_formed_random_uuids() -> None:
    made = uuid4_batch(random.Random(1), 2_000)

    assert len(set(made)) == 2_000
    for text in made:
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="users"):
        LoginTraffic(users=0)
    with pytest.raises(ValueError, match="invalid_ratio"):
        LoginTraffic(invalid_ratio=1.5)


def _outcome(value: bytes) -> str:
    result = validate(value)
    if isinstance(result, LoginEvent):
        return "valid"
    assert isinstance(result, Rejection)
    return result.code.value


def test_a_mix_sets_the_values_drawn_and_the_default_is_the_original_generators() -> None:
    mixed = [
        json.loads(value)
        for _, value in LoginTraffic(1, mix=VARIED, clock=lambda: FIXED_CLOCK).messages(3_000)
    ]

    assert {e["app_version"] for e in mixed} == set(VARIED.versions)
    assert {e["locale"] for e in mixed} == set(VARIED.locales)
    assert Counter(e["device_type"] for e in mixed).keys() == set(VARIED.device_types)
    assert traffic(seed=1).messages(500) == LoginTraffic(
        1, mix=ValueMix(), clock=lambda: FIXED_CLOCK
    ).messages(500)


def test_a_mix_refuses_values_the_fast_encoding_would_garble() -> None:
    with pytest.raises(ValueError, match="escaping"):
        ValueMix(locales=('say "hi"',))
    with pytest.raises(ValueError, match="empty"):
        ValueMix(device_types=())
    with pytest.raises(ValueError, match="missing_device_type"):
        ValueMix(missing_device_type=1.0)


def test_invalid_every_places_every_kind_in_turn_at_that_spacing() -> None:
    source = LoginTraffic(3, users=10, mix=VARIED, invalid_every=4)

    outcomes = [_outcome(value) for _, value in source.messages(4 * 2 * len(InvalidKind))]

    for n, outcome in enumerate(outcomes):
        if n % 4 == 3:
            kind = list(InvalidKind)[(n // 4) % len(InvalidKind)]
            assert outcome == EXPECTED_ERROR_CODE[kind], n
        else:
            assert outcome == "valid", n


def test_the_plan_is_the_stream_with_what_each_message_must_do() -> None:
    def make() -> LoginTraffic:
        return LoginTraffic(8, users=30, invalid_ratio=0.2, clock=lambda: FIXED_CLOCK)

    plan = make().plan(3_000)

    assert [(p.key, p.value) for p in plan] == make().messages(3_000)
    kinds = Counter(p.kind for p in plan)
    assert kinds["no_device_type"] > 0
    assert set(kinds) == {"login", "no_device_type", *InvalidKind}
    for planned in plan:
        assert planned.value is not None
        outcome = _outcome(planned.value)
        if planned.code is None:
            assert outcome == "valid"
            assert planned.event == json.loads(planned.value)
        else:
            assert (outcome, planned.event) == (planned.code, None)


def test_cover_users_walks_the_whole_pool_once_per_lap() -> None:
    users = 97
    source = LoginTraffic(4, users=users, mix=VARIED, invalid_every=5, cover_users=True)

    logins = [p.event["user_id"] for p in source.plan(5 * users) if p.event is not None]

    assert len(logins) == 4 * users
    for lap in range(4):
        assert len(set(logins[lap * users : (lap + 1) * users])) == users


def test_bad_spacing_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="invalid_every"):
        LoginTraffic(invalid_every=-1)
    with pytest.raises(ValueError, match="invalid_every"):
        LoginTraffic(invalid_every=10, invalid_ratio=0.1)
    with pytest.raises(ValueError, match="cover_users"):
        LoginTraffic(cover_users=True)
