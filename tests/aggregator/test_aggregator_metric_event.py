"""The metric event built from window totals: the fields and rules of spec section 3."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from loginmetrics.aggregator.metric_event import build_metric_event, encode_metric_event
from loginmetrics.window import WindowTotals

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
    }


def test_window_size_is_the_sum_of_the_device_distribution() -> None:
    event = build_metric_event(totals(), BUILT_AT, 1)

    assert event.window_size == sum(event.device_distribution.values())


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
