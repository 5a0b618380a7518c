"""Which windows are due in event time: every window end the global watermark has passed, in
order, from the first bucket on; and which emitted windows late messages changed. Pure: the
aggregator loop reads Redis, these decide."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def first_window_end(first_bucket: int, interval: int) -> int:
    """The first window end after the oldest bucket: where a live run would have started."""
    return (first_bucket // interval + 1) * interval


def due_window_ends(
    last_emitted: int | None,
    first_bucket: int,
    watermark: float,
    interval: int,
    retention: int,
    most: int,
) -> list[int]:
    """Window ends not emitted yet that the watermark has reached, oldest first, at most
    ``most``. Ends older than ``retention`` behind the watermark are skipped: a replay of a
    topic older than that has nowhere to keep its windows."""
    start = first_window_end(first_bucket, interval) if last_emitted is None else last_emitted
    if last_emitted is not None:
        start += interval
    oldest = (int(watermark - retention) // interval + 1) * interval
    start = max(start, oldest)
    newest = int(watermark // interval) * interval
    if newest < start:
        return []
    return list(range(start, min(newest, start + (most - 1) * interval) + 1, interval))


def revised_windows(
    late_buckets: Iterable[int],
    window_lengths: Sequence[int],
    last_emitted: int,
    first_end: int,
    interval: int,
) -> list[tuple[int, int]]:
    """(window seconds, end) of every emitted window that holds one of ``late_buckets``: ends
    from ``first_end`` to ``last_emitted`` whose window ``[end - length, end)`` contains the
    bucket. Ordered by end, then length; each window once however many late buckets it holds."""
    revised: set[tuple[int, int]] = set()
    for bucket in late_buckets:
        after = max(first_end, (bucket // interval + 1) * interval)
        for length in window_lengths:
            for end in range(after, min(bucket + length, last_emitted) + 1, interval):
                revised.add((end, length))
    return [(length, end) for end, length in sorted(revised)]
