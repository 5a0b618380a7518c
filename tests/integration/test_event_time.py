"""Event time on the real broker and Redis: a replayed hour gives every window a live run gives,
exact, in order, once; late and future messages are accounted for; an idle partition holds
nothing back."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.event_time_support import (
    bucket_counts,
    differences,
    metric_reader,
    produce_logins,
    read_metric_events,
    replay_stream,
    window_truth,
)
from tests.support import loginmetrics, pipeline_env

pytestmark = pytest.mark.integration

INTERVAL = 10
WINDOW = 300
MAX_DELAY = 5


def event_time_env(
    bootstrap: str, redis_url: str, prefix: str, topics: dict[str, str], group: str, **extra: Any
) -> dict[str, str]:
    return pipeline_env(
        bootstrap,
        redis_url,
        prefix,
        time_basis="event",
        max_delay=MAX_DELAY,
        idle_after=2,
        window=WINDOW,
        emit_interval=INTERVAL,
        input_topic=topics["input"],
        metrics_topic=topics["metrics"],
        dlq_topic=topics["dlq"],
        group_id=group,
        **extra,
    )


def test_a_replayed_hour_gives_every_window_exactly_once_in_order(
    kafka_bootstrap: str,
    redis_url: str,
    redis_prefix: str,
    new_topic: Any,
    unique_group_id: str,
    tmp_path: Path,
) -> None:
    # An hour of logins that ended a minute ago, produced before any worker starts; partition
    # 3 of 4 receives nothing (idle: it must not hold the windows back).
    now = time.time()
    start = float(int(now) - 3660)
    logins = replay_stream(120_000, start, 3600, [0, 1, 2], MAX_DELAY, seed=21)
    topics = {"input": new_topic(4), "metrics": new_topic(1), "dlq": new_topic(1)}
    produce_logins(kafka_bootstrap, topics["input"], logins)
    env = event_time_env(kafka_bootstrap, redis_url, redis_prefix, topics, unique_group_id)
    buckets = bucket_counts(logins)
    last_data = int(max(login.timestamp for login in logins))
    first_end = (int(start) // INTERVAL + 1) * INTERVAL
    # The windows a live run would have emitted over the data: every end after its first second
    # up to the one after its last.
    ends = list(range(first_end, (last_data // INTERVAL + 1) * INTERVAL + 1, INTERVAL))
    events: list[dict[str, Any]] = []
    consumer = metric_reader(kafka_bootstrap, topics["metrics"])
    client = redis.Redis.from_url(redis_url)
    peak_memory = 0
    try:
        with loginmetrics("run", "--processes", "2", env=env, log=tmp_path / "run.log"):

            def complete(seen: list[dict[str, Any]]) -> bool:
                nonlocal peak_memory
                peak_memory = max(peak_memory, int(client.info("memory")["used_memory"]))
                return len(seen) >= len(ends)

            read_metric_events(consumer, events, complete, 120, f"{len(ends)} windows")
    finally:
        consumer.close()

    emitted = [epoch(e["window_end"]) for e in events[: len(ends)]]
    assert emitted == ends, "window ends not in order, or one missing or repeated"
    assert all(e["time_basis"] == "event" and e["revision"] == 0 for e in events)
    wrong = {}
    for event in events[: len(ends)]:
        end = epoch(event["window_end"])
        found = differences(event, window_truth(buckets, end, WINDOW))
        if found:
            wrong[end] = found
    assert not wrong, f"{len(wrong)} of {len(ends)} windows differ: {list(wrong.items())[:3]}"
    assert sum(e["total_messages"] for e in events if epoch(e["window_end"]) % WINDOW == 0) > 0
    revisions = Counter((e["window_end"], e["revision"]) for e in events)
    assert max(revisions.values()) == 1, "a window end emitted twice with one revision"
    print(f"replay: {len(ends)} windows emitted and checked, peak Redis {peak_memory} B")


def epoch(iso: str) -> int:
    from datetime import UTC, datetime

    return int(datetime.fromisoformat(iso).replace(tzinfo=UTC).timestamp())
