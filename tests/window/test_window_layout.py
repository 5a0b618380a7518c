"""Window layout: bucket math, config validation and key names shared by writer and reader."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loginmetrics.runtime.errors import LoginMetricsError
from loginmetrics.window import BucketField, WindowConfigError, WindowLayout

EPOCH_2025 = 1_736_000_000


@st.composite
def layouts(draw: st.DrawFn) -> WindowLayout:
    bucket = draw(st.integers(1, 60))
    return WindowLayout(
        prefix=draw(st.text(st.characters(categories=["L", "N", "P"]), min_size=1, max_size=12)),
        bucket_seconds=bucket,
        window_seconds=bucket * draw(st.integers(1, 400)),
        expiry_grace_seconds=draw(st.integers(0, 120)),
    )


# -- bucket math -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bucket_seconds", "moment", "start"),
    [
        (1, 1000.0, 1000),
        (1, 1000.999, 1000),
        (5, 1004.999, 1000),
        (5, 1005.0, 1005),
        (10, 1009, 1000),
        (60, 1_736_653_976.5, 1_736_653_920),
    ],
)
def test_a_moment_belongs_to_the_bucket_it_falls_in(
    bucket_seconds: int, moment: float, start: int
) -> None:
    layout = WindowLayout(bucket_seconds=bucket_seconds, window_seconds=bucket_seconds * 10)
    assert layout.bucket_start(moment) == start


@given(layouts(), st.floats(0, 2 * EPOCH_2025))
def test_bucket_start_is_a_boundary_at_or_before_the_moment(
    layout: WindowLayout, moment: float
) -> None:
    start = layout.bucket_start(moment)
    assert start % layout.bucket_seconds == 0
    assert start <= moment < start + layout.bucket_seconds


def test_the_window_is_the_buckets_before_its_end() -> None:
    layout = WindowLayout(bucket_seconds=5, window_seconds=30)
    assert list(layout.window_bucket_starts(1030)) == [1000, 1005, 1010, 1015, 1020, 1025]
    assert layout.buckets_per_window == 6


def test_the_default_window_has_300_one_second_buckets() -> None:
    layout = WindowLayout()
    starts = layout.window_bucket_starts(EPOCH_2025)
    assert len(starts) == layout.buckets_per_window == 300
    assert (starts[0], starts[-1]) == (EPOCH_2025 - 300, EPOCH_2025 - 1)


@given(layouts(), st.integers(0, EPOCH_2025), st.integers(-1000, 1000))
def test_a_moment_is_in_the_window_exactly_when_start_le_moment_lt_end(
    layout: WindowLayout, end_bucket: int, offset: int
) -> None:
    end = layout.bucket_start(EPOCH_2025 + end_bucket)
    starts = layout.window_bucket_starts(end)
    assert len(starts) == layout.buckets_per_window
    assert starts[0] == end - layout.window_seconds
    assert starts[-1] == end - layout.bucket_seconds
    moment = end + offset
    inside = end - layout.window_seconds <= moment < end
    assert (layout.bucket_start(moment) in starts) == inside


def test_a_window_end_off_a_bucket_boundary_is_refused() -> None:
    layout = WindowLayout(bucket_seconds=5, window_seconds=30)
    with pytest.raises(ValueError, match="boundary"):
        layout.window_bucket_starts(1003)


# -- configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "names"),
    [
        pytest.param({"bucket_seconds": 0}, "--bucket-seconds", id="zero-bucket"),
        pytest.param({"bucket_seconds": -1}, "--bucket-seconds", id="negative-bucket"),
        pytest.param({"bucket_seconds": 7, "window_seconds": 300}, "--window", id="not-a-multiple"),
        pytest.param(
            {"bucket_seconds": 10, "window_seconds": 5}, "--window", id="window-too-short"
        ),
        pytest.param({"window_seconds": 0}, "--window", id="zero-window"),
        pytest.param({"window_seconds": -300}, "--window", id="negative-window"),
        pytest.param({"prefix": ""}, "prefix", id="empty-prefix"),
        pytest.param({"prefix": "login metrics"}, "prefix", id="prefix-with-space"),
    ],
)
def test_settings_that_do_not_fit_together_are_refused(
    kwargs: dict[str, object], names: str
) -> None:
    with pytest.raises(WindowConfigError, match=names):
        WindowLayout(**kwargs)  # type: ignore[arg-type]


def test_config_errors_are_loginmetrics_errors() -> None:
    assert issubclass(WindowConfigError, LoginMetricsError)


def test_a_window_of_a_single_bucket_is_fine() -> None:
    layout = WindowLayout(bucket_seconds=300, window_seconds=300)
    assert list(layout.window_bucket_starts(600)) == [300]


# -- key names -------------------------------------------------------------------------------


@given(layouts(), st.integers(0, 2 * EPOCH_2025), st.sampled_from(BucketField))
def test_every_key_lives_under_the_prefix(
    layout: WindowLayout, start: int, field: BucketField
) -> None:
    keys = [
        layout.bucket_key(start, field),
        layout.applied_offsets_key("user-login"),
        layout.aggregator_lease_key,
        layout.last_emitted_key,
    ]
    assert all(key.startswith(f"{layout.prefix}:") for key in keys)


def test_bucket_keys_are_what_the_apply_script_builds() -> None:
    # apply_batch.lua appends "<start>:<field>" to bucket_key_prefix; the reader uses bucket_key.
    layout = WindowLayout(prefix="lm")
    assert layout.bucket_key(1736653976, BucketField.USERS) == "lm:bucket:1736653976:users"
    for field in BucketField:
        key = layout.bucket_key(1736653976, field)
        assert key == f"{layout.bucket_key_prefix}1736653976:{field.value}"


def test_keys_of_different_buckets_fields_and_prefixes_never_collide() -> None:
    a, b = WindowLayout(prefix="a"), WindowLayout(prefix="b")
    keys = {
        layout.bucket_key(start, field)
        for layout in (a, b)
        for start in range(1000, 1010)
        for field in BucketField
    }
    assert len(keys) == 2 * 10 * len(BucketField)
    assert a.applied_offsets_key("user-login") != a.applied_offsets_key("other-topic")
    assert a.applied_offsets_key("user-login") != b.applied_offsets_key("user-login")


def test_bucket_keys_lists_one_key_per_window_bucket() -> None:
    layout = WindowLayout(prefix="lm", bucket_seconds=5, window_seconds=15)
    starts = layout.window_bucket_starts(1015)
    assert layout.bucket_keys(starts, BucketField.COUNTS) == [
        "lm:bucket:1000:counts",
        "lm:bucket:1005:counts",
        "lm:bucket:1010:counts",
    ]


@given(layouts())
def test_bucket_keys_outlive_the_window_they_belong_to(layout: WindowLayout) -> None:
    # A key written at the start of its bucket must still be there when the last window that
    # contains the bucket is read, one bucket after that window ends.
    assert layout.ttl_seconds > layout.window_seconds
    assert layout.ttl_seconds >= layout.window_seconds + layout.bucket_seconds
