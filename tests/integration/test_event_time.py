"""Event time on the real broker and Redis: a replayed hour gives every window a live run gives,
exact, in order, once; late and future messages are accounted for; an idle partition holds
nothing back."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.event_time_support import (
    Login,
    bucket_counts,
    differences,
    login_producer,
    metric_reader,
    produce_logins,
    read_metric_events,
    replay_stream,
    window_truth,
)
from tests.support import consume, loginmetrics, pipeline_env

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


def run_event_time(
    kafka_bootstrap: str,
    redis_url: str,
    prefix: str,
    new_topic: Any,
    group: str,
    log: Path,
    logins: list[Login],
    windows: int,
    *,
    live: bool,
) -> list[dict[str, Any]]:
    """The first ``windows`` metric events of ``loginmetrics run --processes 2`` over
    ``logins``: all produced before it starts (a replay), or, ``live``, produced in 20 parts
    while it runs."""
    topics = {"input": new_topic(4), "metrics": new_topic(1), "dlq": new_topic(1)}
    if not live:
        produce_logins(kafka_bootstrap, topics["input"], logins)
    env = event_time_env(kafka_bootstrap, redis_url, prefix, topics, group)
    events: list[dict[str, Any]] = []
    consumer = metric_reader(kafka_bootstrap, topics["metrics"])
    try:
        with loginmetrics("run", "--processes", "2", env=env, log=log):
            if live:
                producer = login_producer(kafka_bootstrap)
                part = len(logins) // 20 + 1
                for at in range(0, len(logins), part):
                    produce_logins(
                        kafka_bootstrap, topics["input"], logins[at : at + part], producer
                    )
                    time.sleep(0.3)
            read_metric_events(
                consumer, events, lambda seen: len(seen) >= windows, 120, f"{windows} windows"
            )
    finally:
        consumer.close()
    return events[:windows]


def test_a_replayed_hour_gives_every_window_exactly_once_in_order_as_a_live_run_does(
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
    buckets = bucket_counts(logins)
    last_data = int(max(login.timestamp for login in logins))
    first_end = (int(start) // INTERVAL + 1) * INTERVAL
    # The windows a live run would have emitted over the data: every end after its first second
    # up to the one after its last.
    ends = list(range(first_end, (last_data // INTERVAL + 1) * INTERVAL + 1, INTERVAL))

    events = run_event_time(
        kafka_bootstrap,
        redis_url,
        redis_prefix,
        new_topic,
        unique_group_id,
        tmp_path / "replay.log",
        logins,
        len(ends),
        live=False,
    )

    emitted = [epoch(e["window_end"]) for e in events]
    assert emitted == ends, "window ends not in order, or one missing or repeated"
    assert all(e["time_basis"] == "event" and e["revision"] == 0 for e in events)
    wrong = {}
    distinct_error = 0.0  # the largest relative error of a distinct count, for the record
    for event in events:
        end = epoch(event["window_end"])
        truth = window_truth(buckets, end, WINDOW)
        found = differences(event, truth)
        if found:
            wrong[end] = found
        for name, exact in (("active_users", truth.users), ("unique_ips", truth.ips)):
            if exact:
                error = abs(event[name] - len(exact)) / len(exact)
                distinct_error = max(distinct_error, error)
    assert not wrong, f"{len(wrong)} of {len(ends)} windows differ: {list(wrong.items())[:3]}"
    print(f"replay: {len(ends)} windows checked; largest distinct-count error {distinct_error:.2%}")
    revisions = Counter((e["window_end"], e["revision"]) for e in events)
    assert max(revisions.values()) == 1, "a window end emitted twice with one revision"

    # The same logins produced while the pipeline runs, in parts: the same windows.
    live = run_event_time(
        kafka_bootstrap,
        redis_url,
        f"{redis_prefix}-live",
        new_topic,
        f"{unique_group_id}-live",
        tmp_path / "live.log",
        logins,
        len(ends),
        live=True,
    )
    assert [figures(e) for e in live] == [figures(e) for e in events]


def figures(event: dict[str, Any]) -> dict[str, Any]:
    """What a window says, without when it was built or emitted."""
    return {k: v for k, v in event.items() if k not in ("timestamp", "watermark")}


def epoch(iso: str) -> int:
    from datetime import UTC, datetime

    return int(datetime.fromisoformat(iso).replace(tzinfo=UTC).timestamp())


def live_login(n: int, moment: float, refused: str | None = None) -> Login:
    return Login(
        partition=0,
        timestamp=round(moment, 3),
        user=f"user-{n % 37}",
        ip=f"10.0.0.{n % 11}",
        device=("android", "iOS")[n % 2],
        version="2.3.0",
        locale=("TX", "OH")[n % 2],
        refused=refused,
    )


def test_late_messages_revise_their_windows_too_late_and_future_ones_are_dead_letters(
    kafka_bootstrap: str,
    redis_url: str,
    redis_prefix: str,
    new_topic: Any,
    unique_group_id: str,
    tmp_path: Path,
) -> None:
    topics = {"input": new_topic(1), "metrics": new_topic(1), "dlq": new_topic(1)}
    env = pipeline_env(
        kafka_bootstrap,
        redis_url,
        redis_prefix,
        time_basis="event",
        max_delay=1,
        allowed_lateness=30,
        max_future=60,
        idle_after=60,  # the one partition is never idle here: the watermark alone decides
        window=10,
        emit_interval=2,
        input_topic=topics["input"],
        metrics_topic=topics["metrics"],
        dlq_topic=topics["dlq"],
        group_id=unique_group_id,
    )
    sent: list[Login] = []
    producer = login_producer(kafka_bootstrap)

    def send(*logins: Login) -> None:
        produce_logins(kafka_bootstrap, topics["input"], logins, producer)
        sent.extend(logins)

    events: list[dict[str, Any]] = []
    consumer = metric_reader(kafka_bootstrap, topics["metrics"])
    try:
        with loginmetrics("run", "--processes", "1", env=env, log=tmp_path / "run.log"):
            for n in range(40):  # 8 s of live logins, 5 a second
                send(live_login(n, time.time()))
                time.sleep(0.2)
            read_metric_events(consumer, events, lambda seen: len(seen) >= 3, 30, "3 windows")
            emitted_end = max(epoch(e["window_end"]) for e in events)
            # Late by ~6 s, inside the lateness: its bucket's emitted windows come again.
            late = live_login(100, emitted_end - 4.5)
            send(
                late,
                live_login(101, time.time() - 120, refused="too_late"),
                live_login(102, time.time() + 3600, refused="future_timestamp"),
            )
            revised = {
                end for end in range(emitted_end - 4, emitted_end + 1, 2) if end > late.timestamp
            }
            for n in range(200, 220):  # the stream goes on: emission is not disturbed
                send(live_login(n, time.time()))
                time.sleep(0.2)

            def revisions_seen(seen: list[dict[str, Any]]) -> bool:
                return revised <= {epoch(e["window_end"]) for e in seen if e["revision"] == 1}

            read_metric_events(consumer, events, revisions_seen, 30, f"revisions of {revised}")
            last_live = int(sent[-1].timestamp)
            read_metric_events(
                consumer,
                events,
                lambda seen: max(epoch(e["window_end"]) for e in seen) >= last_live - 3,
                30,
                "the windows after the late messages",
            )
        letters = [json.loads(v) for v in consume(kafka_bootstrap, topics["dlq"], 2)]
    finally:
        consumer.close()

    assert sorted(letter["error_code"] for letter in letters) == ["future_timestamp", "too_late"]
    reasons = [letter["error"] for letter in letters]
    assert any("older than the oldest time a window still takes" in r for r in reasons)
    newest: dict[int, dict[str, Any]] = {}
    for event in events:
        end = epoch(event["window_end"])
        if end not in newest or event["revision"] > newest[end]["revision"]:
            newest[end] = event
    assert max(e["revision"] for e in events) == 1, "one revision each: a tick's late data coalesce"
    pairs = Counter((e["window_end"], e["revision"]) for e in events)
    assert max(pairs.values()) == 1
    buckets = bucket_counts(sent)
    wrong = {
        end: found
        for end, event in newest.items()
        if (found := differences(event, window_truth(buckets, end, 10)))
    }
    assert not wrong, f"newest revisions differ from the truth: {wrong}"
    ends = sorted(newest)
    assert ends == list(range(ends[0], ends[-1] + 1, 2)), "a window end is missing"
    for end in revised:
        first = next(e for e in events if epoch(e["window_end"]) == end and e["revision"] == 0)
        assert newest[end]["window_size"] == first["window_size"] + 1
