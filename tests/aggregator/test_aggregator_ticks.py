"""The tick rule: which window ends exist, agreed by every aggregator from the Redis clock."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loginmetrics.aggregator.ticks import seconds_to_next_tick, tick_index, tick_window_end
from loginmetrics.window import WindowLayout

NOW = 1_737_417_730.0


@pytest.mark.parametrize(
    ("server_now", "interval", "bucket", "window_end"),
    [
        (NOW + 0.3, 10.0, 1, NOW),  # default: window ends on multiples of 10 s
        (NOW + 9.99, 10.0, 1, NOW),
        (NOW + 10.0, 10.0, 1, NOW + 10),
        (10.5, 10.0, 3, 9),  # tick start 10 rounds down to the bucket starting at 9
        (100.7, 0.5, 1, 100),  # two ticks share a bucket boundary: one window end
        (101.2, 0.5, 1, 101),
        (NOW + 4.0, 2.5, 1, NOW + 2),  # tick 2.5 -> bucket 2
    ],
)
def test_window_end_is_the_bucket_boundary_at_or_before_the_tick_start(
    server_now: float, interval: float, bucket: int, window_end: float
) -> None:
    layout = WindowLayout(bucket_seconds=bucket, window_seconds=bucket * 10)

    assert tick_window_end(server_now, interval, layout) == window_end


def test_seconds_to_next_tick() -> None:
    assert seconds_to_next_tick(NOW + 3.25, 10.0) == pytest.approx(6.75)
    assert seconds_to_next_tick(NOW, 10.0) == pytest.approx(10.0)


readings = st.floats(min_value=1.6e9, max_value=2.0e9, allow_nan=False)
intervals = st.sampled_from([0.25, 0.5, 1.0, 2.5, 3.0, 10.0, 60.0])
buckets = st.sampled_from([1, 2, 5, 10])


@given(readings, st.floats(min_value=0, max_value=1), intervals, buckets)
def test_two_readings_in_one_tick_name_the_same_window(
    first: float, fraction: float, interval: float, bucket: int
) -> None:
    layout = WindowLayout(bucket_seconds=bucket, window_seconds=bucket * 30)
    tick = tick_index(first, interval)
    second = (tick + fraction * 0.999) * interval  # another reading inside the same tick
    if tick_index(second, interval) != tick:
        return  # float rounding put it in a neighbouring tick

    assert tick_window_end(first, interval, layout) == tick_window_end(second, interval, layout)


@given(readings, intervals, buckets)
def test_window_end_is_a_complete_bucket_boundary(now: float, interval: float, bucket: int) -> None:
    layout = WindowLayout(bucket_seconds=bucket, window_seconds=bucket * 30)

    end = tick_window_end(now, interval, layout)

    assert end % bucket == 0
    assert end <= now  # the bucket before it can receive no more writes
    assert end > now - interval - bucket


@given(readings, st.floats(min_value=0, max_value=1000), intervals, buckets)
def test_window_ends_never_go_back(now: float, later: float, interval: float, bucket: int) -> None:
    layout = WindowLayout(bucket_seconds=bucket, window_seconds=bucket * 30)

    assert tick_window_end(now + later, interval, layout) >= tick_window_end(now, interval, layout)
