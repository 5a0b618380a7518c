"""Which window ends exist: emit ticks aligned on the Redis server clock, so every aggregator
agrees on them.

Tick ``k`` starts at ``k * emit_interval`` seconds of the Redis clock (epoch seconds); its window
ends at the start of the bucket containing the tick start, i.e. at the last bucket boundary at
or before it. With the defaults (10 s interval, 1 s buckets) window ends are the multiples of 10.
When the interval is not a multiple of the bucket, neighbouring windows overlap unevenly; when
it is shorter than a bucket, several ticks share a window end and only the first one emits.
"""

from __future__ import annotations

import math

from loginmetrics.window import WindowLayout


def tick_index(server_now: float, emit_interval_seconds: float) -> int:
    """The tick the Redis clock reading ``server_now`` falls in."""
    return math.floor(server_now / emit_interval_seconds)


def tick_window_end(server_now: float, emit_interval_seconds: float, layout: WindowLayout) -> int:
    """End (exclusive, epoch seconds, on a bucket boundary) of the window of the current tick.

    A function of the tick index alone, so two aggregators with different readings inside one
    tick name the same window. Never later than the bucket ``server_now`` is in, so every bucket
    of the window is complete: the apply script buckets by the same clock.
    """
    tick_start = tick_index(server_now, emit_interval_seconds) * emit_interval_seconds
    return min(layout.bucket_start(tick_start), layout.bucket_start(server_now))


def seconds_to_next_tick(server_now: float, emit_interval_seconds: float) -> float:
    next_start = (tick_index(server_now, emit_interval_seconds) + 1) * emit_interval_seconds
    return max(0.0, next_start - server_now)


# A Redis clock reading that strays further than this from the local monotonic clock between
# two readings is a step, not drift or a slow reply.
CLOCK_STEP_TOLERANCE_SECONDS = 2.0


def clock_step_warning(
    previous: tuple[float, float], current: tuple[float, float], emit_interval_seconds: float
) -> str | None:
    """What an operator must know when the Redis clock stepped between two readings, each a
    (Redis time, local monotonic time) pair; None when it moved with the local clock."""
    step = (current[0] - previous[0]) - (current[1] - previous[1])
    if abs(step) <= CLOCK_STEP_TOLERANCE_SECONDS:
        return None
    if step < 0:
        return (
            f"the Redis clock stepped back {-step:.1f} s: no metric event until it passes the "
            "last window end emitted again (a window end is never emitted twice). Check the "
            "Redis host's time synchronisation, or whether a failover moved the window to a host "
            "with another clock"
        )
    skipped = math.floor(step / emit_interval_seconds)
    return (
        f"the Redis clock jumped ahead {step:.1f} s: about {skipped} metric events (the window "
        "ends it skipped) will not be emitted. Check the Redis host's time synchronisation"
    )
