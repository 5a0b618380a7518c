"""How many messages the workers applied to the window lately, from its own bucket counters:
the rate ``loginmetrics status`` turns a lag in messages into seconds with."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis

from loginmetrics.window.layout import COUNT_INVALID, COUNT_VALID, BucketField, WindowLayout
from loginmetrics.window.read import BucketCounts, sum_bucket_counts

RECENT_SECONDS = 60


@dataclass(frozen=True, slots=True)
class RecentThroughput:
    """Messages (valid and invalid) applied in the complete buckets ``[end - seconds, end)``."""

    messages: int
    seconds: int
    end: int  # epoch seconds, Redis clock

    @property
    def per_second(self) -> float:
        return self.messages / self.seconds


def _as_int(raw: Any) -> int:
    return 0 if raw is None else int(raw)


def recent_throughput(
    client: redis.Redis, layout: WindowLayout, seconds: int = RECENT_SECONDS
) -> RecentThroughput:
    """Messages applied in about the last ``seconds`` (whole buckets, the current one excluded:
    it is still being written)."""
    span = max(1, seconds // layout.bucket_seconds) * layout.bucket_seconds
    now, micros = client.time()
    end = layout.bucket_start(float(now) + float(micros) / 1_000_000)
    starts = range(end - span, end, layout.bucket_seconds)
    pipe = client.pipeline(transaction=False)
    for key in layout.bucket_keys(starts, BucketField.COUNTS):
        pipe.hmget(key, [COUNT_VALID, COUNT_INVALID])
    replies = pipe.execute()
    buckets = [
        BucketCounts(start, _as_int(valid), _as_int(invalid))
        for start, (valid, invalid) in zip(starts, replies, strict=True)
    ]
    valid, invalid, _first = sum_bucket_counts(buckets)
    return RecentThroughput(valid + invalid, span, end)
