"""The pure offset checks: truncated partitions and offsets skipped between two reads."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from loginmetrics.worker.offset_checks import Truncated, skipped_offsets, truncated_partitions


def test_a_partition_ending_at_or_before_its_applied_offset_is_truncated() -> None:
    applied = {0: 5000, 1: 99, 2: 100, 3: None, 4: 7}
    highs = {0: 100, 1: 100, 2: 100, 3: 0, 4: 0}
    assert truncated_partitions(applied, highs) == [
        Truncated(0, 5000, 100),
        Truncated(2, 100, 100),
        Truncated(4, 7, 0),
    ]
    assert Truncated(0, 5000, 100).gap == 4901
    assert Truncated(0, 5000, 100).restart_at == 99
    assert Truncated(4, 7, 0).restart_at is None  # empty log: read it from its start


def test_a_partition_without_a_watermark_is_left_alone() -> None:
    assert truncated_partitions({0: 10}, {}) == []


@given(st.integers(0, 10**12), st.integers(1, 10**6))
def test_the_gap_is_exactly_the_offsets_in_between(last: int, missing: int) -> None:
    first = last + 1 + missing
    assert skipped_offsets({0: last, 1: last, 2: None}, {0: first, 1: last + 1, 2: 5}) == {
        0: missing
    }
