"""The metric event built from window totals: the fields and rules of spec section 3."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loginmetrics.aggregator.metric_event import (
    DEFAULT_MAX_DISTRIBUTION_VALUES,
    METRIC_EVENT_MAX_BYTES,
    EventTimeStamp,
    build_metric_event,
    by_count,
    encode_metric_event,
)
from loginmetrics.window import WindowTotals
from loginmetrics.window.layout import OTHER_VALUES

END = 1_737_417_730  # 2025-01-21T00:02:10 UTC
BUILT_AT = datetime(2025, 1, 21, 0, 2, 10, 15516, tzinfo=UTC)


def totals(**overrides: object) -> WindowTotals:
    fields: dict[str, object] = {
        "start": END - 300,
        "end": END,
        "valid": 43,
        "invalid": 2,
        "active_users": 43,
        "unique_ips": 41,
        "devices": {"iOS": 21, "android": 22},
        "versions": {"2.3.0": 43},
        "locales": {"OH": 3, "TX": 3, "CA": 5},
        "first_active_bucket": END - 23,
    }
    fields.update(overrides)
    return WindowTotals(**fields)  # type: ignore[arg-type]


def test_event_carries_every_field_of_the_spec() -> None:
    event = json.loads(encode_metric_event(build_metric_event(totals(), BUILT_AT, 1)))

    assert event == {
        "timestamp": "2025-01-21T00:02:10.015516",
        "window_start": "2025-01-20T23:57:10.000000",
        "window_end": "2025-01-21T00:02:10.000000",
        "window_seconds": 300,
        "window_size": 43,
        "active_users": 43,
        "unique_ips": 41,
        "processing_rate": 1.96,  # 45 messages over the 23 covered seconds
        "error_rate": 4.44,  # 100 * 2 / 45
        "device_distribution": {"android": 22, "iOS": 21},
        "version_distribution": {"2.3.0": 43},
        "location_distribution": {"CA": 5, "OH": 3, "TX": 3},
        "total_messages": 45,
        "total_errors": 2,
        "time_basis": "processing",
        "watermark": None,
        "revision": 0,
    }


def test_an_event_time_event_says_its_watermark_and_revision() -> None:
    stamp = EventTimeStamp(watermark=END + 4.5, revision=2)
    event = build_metric_event(totals(), BUILT_AT, 1, event_time=stamp)

    assert (event.time_basis, event.watermark, event.revision) == (
        "event",
        "2025-01-21T00:02:14.500000",
        2,
    )


def test_window_size_is_the_sum_of_the_device_distribution() -> None:
    event = build_metric_event(totals(), BUILT_AT, 1)

    assert event.window_size == sum(event.device_distribution.values())


def test_distinct_counts_never_exceed_the_valid_messages_they_count() -> None:
    # The HyperLogLog estimate of 130 fresh users once came out at 131.
    devices = {"android": 65, "iOS": 65}
    event = build_metric_event(
        totals(valid=130, active_users=131, unique_ips=132, devices=devices), BUILT_AT, 1
    )

    assert (event.window_size, event.active_users, event.unique_ips) == (130, 130, 130)


def test_distinct_counts_under_the_window_size_are_kept() -> None:
    event = build_metric_event(totals(valid=43, active_users=12, unique_ips=41), BUILT_AT, 1)

    assert (event.active_users, event.unique_ips) == (12, 41)


def test_distributions_list_the_largest_count_first() -> None:
    event = build_metric_event(totals(), BUILT_AT, 1)
    encoded = encode_metric_event(event).decode()

    assert list(event.location_distribution) == ["CA", "OH", "TX"]
    assert encoded.index('"android"') < encoded.index('"iOS"')


def test_zero_traffic_gives_zero_rates_and_empty_distributions() -> None:
    empty = totals(
        valid=0,
        invalid=0,
        active_users=0,
        unique_ips=0,
        devices={},
        versions={},
        locales={},
        first_active_bucket=None,
    )

    event = build_metric_event(empty, BUILT_AT, 1)

    assert event.total_messages == event.total_errors == event.window_size == 0
    assert event.processing_rate == 0.0
    assert event.error_rate == 0.0
    assert event.device_distribution == {}
    assert event.window_seconds == 300


def test_only_invalid_messages_is_a_hundred_percent_error_rate() -> None:
    invalid_only = totals(
        valid=0, invalid=7, active_users=0, unique_ips=0, devices={}, versions={}, locales={}
    )

    event = build_metric_event(invalid_only, BUILT_AT, 1)

    assert event.error_rate == 100.0
    assert event.window_size == 0
    assert event.total_messages == 7


@pytest.mark.parametrize(
    ("valid", "invalid", "error_rate"),
    [(2, 1, 33.33), (1, 2, 66.67), (999_999, 1, 0.0), (9_999, 1, 0.01), (100, 0, 0.0)],
)
def test_error_rate_is_rounded_to_two_decimals(valid: int, invalid: int, error_rate: float) -> None:
    event = build_metric_event(totals(valid=valid, invalid=invalid), BUILT_AT, 1)

    assert event.error_rate == error_rate


@pytest.mark.parametrize(
    ("first_active_bucket", "bucket_seconds", "rate"),
    [
        (END - 300, 1, 0.15),  # active since the window start: 45 / 300
        (END - 1, 1, 45.0),  # only the last bucket saw traffic
        (END - 7, 1, 6.43),  # 45 / 7
        (END - 10, 5, 4.5),  # two 5 s buckets covered
    ],
)
def test_processing_rate_divides_by_the_covered_seconds(
    first_active_bucket: int, bucket_seconds: int, rate: float
) -> None:
    event = build_metric_event(
        totals(first_active_bucket=first_active_bucket), BUILT_AT, bucket_seconds
    )

    assert event.processing_rate == rate


def test_covered_time_is_at_least_one_bucket() -> None:
    # A hand-built total whose first active bucket is the window end must not divide by zero.
    event = build_metric_event(totals(first_active_bucket=END), BUILT_AT, 5)

    assert event.processing_rate == 9.0


def test_timestamps_are_utc_without_offset() -> None:
    plus_two = timezone(timedelta(hours=2))
    built_at = datetime(2025, 1, 21, 2, 2, 6, tzinfo=plus_two)

    event = build_metric_event(totals(), built_at, 1)

    assert event.timestamp == "2025-01-21T00:02:06.000000"
    assert datetime.fromisoformat(event.window_end) == datetime(2025, 1, 21, 0, 2, 10)


# -- bounded distributions ---------------------------------------------------------------------


def test_an_event_lists_the_largest_values_and_sums_the_rest_as_other() -> None:
    versions = {f"build-{i:03d}": i + 1 for i in range(150)}  # 11,325 logins
    window = totals(valid=11_325, devices={"android": 11_325}, versions=versions)

    event = build_metric_event(window, BUILT_AT, 1, max_values=100)

    listed = list(event.version_distribution.items())
    assert listed[:100] == [(f"build-{i:03d}", i + 1) for i in range(149, 49, -1)]
    assert listed[100] == (OTHER_VALUES, sum(range(1, 51)))
    assert len(listed) == 101
    assert sum(event.version_distribution.values()) == event.window_size == 11_325


def test_other_values_counted_in_redis_join_the_rest() -> None:
    window = totals(valid=20, devices={"a": 20}, versions={"a": 9, "b": 5, "c": 2, OTHER_VALUES: 4})

    event = build_metric_event(window, BUILT_AT, 1, max_values=2)

    assert event.version_distribution == {"a": 9, "b": 5, OTHER_VALUES: 6}


def test_the_original_generators_traffic_is_listed_whole() -> None:
    locales = {f"S{i:02d}": 10 + i for i in range(50)}
    valid = sum(locales.values())
    window = totals(
        valid=valid,
        devices={"android": valid - 7, "iOS": 7},
        versions={"2.3.0": valid},
        locales=locales,
    )

    event = build_metric_event(window, BUILT_AT, 1)

    assert (
        event.location_distribution
        == by_count(locales)
        == dict(sorted(locales.items(), key=lambda item: -item[1]))
    )
    assert event.version_distribution == {"2.3.0": valid}
    assert event.device_distribution == {"android": valid - 7, "iOS": 7}


def test_an_event_of_long_values_lists_fewer_to_stay_small() -> None:
    # 100 values of 256 control characters per distribution: 460 kB if all were listed.
    names = {f"{i:03d}" + "\x01" * 253: 1 for i in range(100)}
    window = totals(valid=100, devices=names, versions=names, locales=names)

    event = build_metric_event(window, BUILT_AT, 1)

    assert len(encode_metric_event(event)) <= METRIC_EVENT_MAX_BYTES
    for distribution in (
        event.device_distribution,
        event.version_distribution,
        event.location_distribution,
    ):
        assert 1 < len(distribution) < 100
        assert sum(distribution.values()) == 100
        assert OTHER_VALUES in distribution


def test_the_default_lists_a_hundred_values() -> None:
    assert DEFAULT_MAX_DISTRIBUTION_VALUES == 100


@given(
    st.dictionaries(st.text(max_size=6), st.integers(1, 1000), max_size=80),
    st.integers(0, 30),
)
def test_a_listed_distribution_keeps_its_sum_and_its_largest_values(
    distribution: dict[str, int], max_values: int
) -> None:
    listed = by_count(distribution, max_values)

    assert sum(listed.values()) == sum(distribution.values())
    named = {name: n for name, n in listed.items() if name != OTHER_VALUES}
    assert len(named) <= max_values
    assert all(distribution[name] == n for name, n in named.items())
    left_out = [n for name, n in distribution.items() if name not in named]
    assert all(n <= min(named.values()) for n in left_out) if named else True
    assert list(named.values()) == sorted(named.values(), reverse=True)
