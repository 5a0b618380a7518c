"""Retry backoff: delays grow to a cap, each within +-20 % jitter, never unbounded."""

from __future__ import annotations

import random
from itertools import islice

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loginmetrics.runtime.backoff import Backoff


def nominal(backoff: Backoff, attempt: int) -> float:
    """The delay before jitter: initial * multiplier ** attempt, capped."""
    return min(backoff.initial_seconds * backoff.multiplier**attempt, backoff.max_seconds)


@pytest.mark.parametrize("extreme", [0.8, 1.2])
def test_the_default_delays_double_from_a_tenth_of_a_second_to_five(extreme: float) -> None:
    delays = list(islice(Backoff(jitter=lambda low, high: extreme).delays(), 9))
    plain = [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0, 5.0]
    assert delays == pytest.approx([d * extreme for d in plain])


def test_jitter_spreads_retries_of_different_workers() -> None:
    rng_state = random.getstate()
    try:
        random.seed(7)
        firsts = {next(Backoff().delays()) for _ in range(20)}
    finally:
        random.setstate(rng_state)
    assert len(firsts) > 1
    assert all(0.08 <= d <= 0.12 for d in firsts)


def test_the_delays_never_run_out() -> None:
    assert len(list(islice(Backoff(initial_seconds=1, max_seconds=2).delays(), 1000))) == 1000


@given(
    st.floats(0.001, 10),
    st.floats(1, 100),
    st.floats(1.1, 4),
)
def test_every_delay_is_its_nominal_value_within_the_jitter(
    initial: float, cap_factor: float, multiplier: float
) -> None:
    backoff = Backoff(
        initial_seconds=initial, max_seconds=initial * cap_factor, multiplier=multiplier
    )
    delays = list(islice(backoff.delays(), 60))
    for attempt, delay in enumerate(delays):
        expected = nominal(backoff, attempt)
        assert 0.8 * expected * (1 - 1e-9) <= delay <= 1.2 * expected * (1 + 1e-9)
    assert max(delays) <= 1.2 * backoff.max_seconds * (1 + 1e-9)
    assert delays[-1] >= 0.8 * backoff.max_seconds * (1 - 1e-9)  # the cap is reached
