"""Event time's emission plan: due window ends and revised windows, against brute force."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from loginmetrics.aggregator.event_emission import (
    due_window_ends,
    first_window_end,
    revised_windows,
)


def test_a_backlog_is_emitted_end_by_end_from_its_first_bucket() -> None:
    ends = due_window_ends(None, 1_000_003, 1_000_047.5, 10, 86_400, 100)
    assert ends == [1_000_010, 1_000_020, 1_000_030, 1_000_040]


def test_emission_goes_on_after_the_last_end_and_stops_at_the_watermark() -> None:
    assert due_window_ends(1_000_040, 1_000_003, 1_000_060.0, 10, 86_400, 100) == [
        1_000_050,
        1_000_060,
    ]
    assert due_window_ends(1_000_060, 1_000_003, 1_000_069.9, 10, 86_400, 100) == []


def test_a_catch_up_is_handed_out_in_bounded_steps() -> None:
    ends = due_window_ends(None, 0, 10_000.0, 10, 86_400, 25)
    assert ends == list(range(10, 260, 10))


def test_ends_older_than_the_retention_are_skipped() -> None:
    assert due_window_ends(None, 0, 1_000.0, 10, 300, 100)[0] == 710


@given(
    first=st.integers(0, 500),
    watermark=st.floats(0, 1_000),
    last=st.one_of(st.none(), st.integers(0, 100).map(lambda k: k * 10)),
)
def test_due_ends_are_every_interval_end_after_the_last_up_to_the_watermark(
    first: int, watermark: float, last: int | None
) -> None:
    start = first_window_end(first, 10) if last is None else last + 10
    expected = [e for e in range(0, 1_100, 10) if e >= start and e <= watermark]
    assert due_window_ends(last, first, watermark, 10, 86_400, 10_000) == expected


@given(
    late=st.sets(st.integers(0, 400), max_size=5),
    lengths=st.sets(st.sampled_from([10, 60, 300]), min_size=1),
    last_k=st.integers(1, 50),
    first_k=st.integers(1, 10),
)
def test_revised_windows_are_exactly_the_emitted_windows_holding_a_late_bucket(
    late: set[int], lengths: set[int], last_k: int, first_k: int
) -> None:
    last, first_end = last_k * 10, first_k * 10
    expected = sorted(
        (
            (length, end)
            for end in range(first_end, last + 1, 10)
            for length in lengths
            if any(end - length <= b < end for b in late)
        ),
        key=lambda w: (w[1], w[0]),
    )
    assert revised_windows(late, sorted(lengths), last, first_end, 10) == expected
