"""The range planner (pure): the buckets it picks tile the range exactly, are all still there,
are the coarsest that fit, and an edge moves only where its own seconds are gone."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loginmetrics.window import BadRangeError, Tier, TierBucket, WindowLayout, plan_range

HOUR = 3600
DAY = 24 * HOUR
BASE = 1_700_000_000 // DAY * DAY

layouts = st.builds(
    WindowLayout, bucket_seconds=st.sampled_from([1, 2, 5, 7, 60]), window_seconds=st.just(420)
)


@st.composite
def situations(draw: st.DrawFn) -> tuple[WindowLayout, int, int, int | None, int | None, int]:
    """A layout, a range, how far each tier is rolled up and the oldest second still kept."""
    layout = draw(layouts)
    start = BASE + draw(st.integers(0, 2 * DAY))
    end = start + draw(st.integers(1, 2 * DAY))
    minutes = draw(st.none() | st.integers(0, 4 * DAY // 60).map(lambda m: BASE + 60 * m))
    hours = None
    if minutes is not None:
        hours = draw(
            st.none() | st.integers(0, (minutes - BASE) // HOUR).map(lambda h: BASE + HOUR * h)
        )
    oldest = BASE + draw(st.integers(0, 4 * DAY))
    return layout, start, end, minutes, hours, oldest


def length(layout: WindowLayout, bucket: TierBucket) -> int:
    return layout.tier_seconds(bucket.tier)


@given(situations())
def test_the_buckets_tile_the_planned_range_exactly(
    situation: tuple[WindowLayout, int, int, int | None, int | None, int],
) -> None:
    layout, start, end, minutes, hours, oldest = situation
    plan = plan_range(start, end, layout, minutes, hours, oldest)

    at = plan.start
    for bucket in plan.buckets:
        assert bucket.start == at
        assert bucket.start % length(layout, bucket) == 0
        at += length(layout, bucket)
    assert at == plan.end
    assert plan.start <= start < end <= plan.end
    assert plan.rounded == ((plan.start, plan.end) != (start, end))


@given(situations())
def test_every_bucket_read_is_rolled_up_or_still_kept(
    situation: tuple[WindowLayout, int, int, int | None, int | None, int],
) -> None:
    layout, start, end, minutes, hours, oldest = situation
    plan = plan_range(start, end, layout, minutes, hours, oldest)

    for bucket in plan.buckets:
        ends = bucket.start + length(layout, bucket)
        if bucket.tier is Tier.HOUR:
            assert hours is not None
            assert ends <= hours
        elif bucket.tier is Tier.MINUTE:
            assert minutes is not None
            assert ends <= minutes
        elif layout.has_tiers and minutes is not None:
            # a second that is gone is read only where no minute holds it either
            assert bucket.start >= oldest or bucket.start >= minutes


@given(situations())
def test_an_edge_moves_by_less_than_a_minute_and_only_where_its_seconds_are_gone(
    situation: tuple[WindowLayout, int, int, int | None, int | None, int],
) -> None:
    layout, start, end, minutes, hours, oldest = situation
    plan = plan_range(start, end, layout, minutes, hours, oldest)

    assert start - plan.start < 60
    assert plan.end - end < 60
    aligned = start % layout.bucket_seconds == 0 and end % layout.bucket_seconds == 0
    if aligned and (not layout.has_tiers or minutes is None or start >= oldest):
        assert not plan.rounded


@given(situations())
def test_no_run_of_finer_buckets_could_have_been_one_coarser_bucket(
    situation: tuple[WindowLayout, int, int, int | None, int | None, int],
) -> None:
    layout, start, end, minutes, hours, oldest = situation
    plan = plan_range(start, end, layout, minutes, hours, oldest)

    for coarse, until in ((Tier.MINUTE, minutes), (Tier.HOUR, hours)):
        if until is None or not layout.has_tiers:
            continue
        size = layout.tier_seconds(coarse)
        starts = {b.start for b in plan.buckets if layout.tier_seconds(b.tier) < size}
        for bucket_start in starts:
            if bucket_start % size == 0 and bucket_start + size <= min(plan.end, until):
                pytest.fail(f"{coarse.value} at {bucket_start} was read in finer buckets")


def test_a_day_reads_hours_in_the_middle_minutes_and_seconds_at_its_edges() -> None:
    layout = WindowLayout()
    now = BASE + 2 * DAY + 20 * 60 + 34  # 20 min 34 s past an hour
    rolled_minutes, rolled_hours = now // 60 * 60 - 60, now // HOUR * HOUR
    plan = plan_range(now - DAY, now, layout, rolled_minutes, rolled_hours, now - 300)

    # A day ago its seconds are gone: the start is widened to its minute.
    assert plan.rounded
    assert (plan.start, plan.end) == (now - DAY - 34, now)
    assert plan.count(Tier.HOUR) == 23
    assert plan.count(Tier.MINUTE) == 40 + 19  # to yesterday's next hour; today's to the rolled
    assert plan.count(Tier.BUCKET) == 60 + 34  # the minute not rolled yet, and the last 34 s


def test_a_range_must_end_after_it_starts() -> None:
    with pytest.raises(BadRangeError, match="must end after it starts"):
        plan_range(BASE + 10, BASE + 10, WindowLayout(), None, None, BASE)
