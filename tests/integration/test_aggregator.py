"""The aggregator on the real broker and Redis: the metric events report what the workers
wrote into the window, once per window end."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import redis
from confluent_kafka import Consumer

from loginmetrics.aggregator.process import run_aggregator, run_aggregator_process
from loginmetrics.aggregator.settings import AggregatorSettings
from loginmetrics.window import PartitionAdvance, WindowIncrements, WindowLayout, WindowWriter
from tests.support import topic_reader

pytestmark = pytest.mark.integration

DEVICES = ("android", "iOS", "web")
LOCALES = ("TX", "OH", "CA", "NY")


def batch(index: int) -> WindowIncrements:
    """600 users and 250 ips in ~750 logins per batch; consecutive batches share 200 users and
    50 ips."""
    devices = Counter({DEVICES[i % 3]: 250 + 10 * index + i for i in range(3)})
    valid = sum(devices.values())
    return WindowIncrements(
        users={f"user-{n}" for n in range(index * 400, index * 400 + 600)},
        ips={f"10.0.{n // 256}.{n % 256}" for n in range(index * 200, index * 200 + 250)},
        devices=devices,
        versions=Counter({"2.3.0": valid - 5, "2.4.1": 5}),
        locales=Counter({LOCALES[index % 4]: valid}),
        valid=valid,
        invalid=index + 2,
    )


def read_events(
    consumer: Consumer,
    until: Callable[[list[dict[str, Any]]], bool],
    timeout: float,
    events: list[dict[str, Any]],
) -> None:
    deadline = time.monotonic() + timeout
    while not until(events):
        assert time.monotonic() < deadline, f"no such metric event in {timeout} s: {events[-3:]}"
        for message in consumer.consume(100, 0.5):
            assert message.error() is None, message.error()
            events.append(json.loads(message.value() or b"{}"))


@pytest.mark.timeout(60)
def test_metric_events_report_the_window_written_by_workers(
    kafka_bootstrap: str,
    redis_url: str,
    redis_client: redis.Redis,
    redis_prefix: str,
    new_topic: Callable[..., str],
    unique_group_id: str,
) -> None:
    topic = new_topic(1)
    layout = WindowLayout(prefix=redis_prefix, bucket_seconds=1, window_seconds=10)
    writer = WindowWriter(redis_client, layout, "user-login")
    batches = [batch(i) for i in range(3)]
    for offset, increments in enumerate(batches):
        expected = None if offset == 0 else offset * 100 - 1
        outcome = writer.apply_batch([PartitionAdvance(0, expected, offset * 100 + 99)], increments)
        assert outcome.applied
    users = set().union(*(b.users for b in batches))
    ips = set().union(*(b.ips for b in batches))
    devices = sum((b.devices for b in batches), Counter[str]())
    valid = sum(b.valid for b in batches)
    invalid = sum(b.invalid for b in batches)

    settings = AggregatorSettings(
        kafka={"bootstrap.servers": kafka_bootstrap},
        redis_url=redis_url,
        layout=layout,
        metrics_topic=topic,
        emit_interval_seconds=1.0,
        lease_seconds=3.0,
    )
    stop = threading.Event()
    aggregator = threading.Thread(target=run_aggregator, args=(settings, stop), daemon=True)
    consumer = topic_reader(kafka_bootstrap, topic, group_id=unique_group_id)
    events: list[dict[str, Any]] = []
    aggregator.start()
    try:
        # The writes' buckets complete within a second or two; then whole windows follow.
        read_events(
            consumer,
            lambda seen: sum(e["total_messages"] == valid + invalid for e in seen) >= 2,
            timeout=20,
            events=events,
        )
    finally:
        stop.set()
        aggregator.join(timeout=15)
        consumer.close()
    assert not aggregator.is_alive(), "the aggregator did not stop on request"

    full = next(e for e in events if e["total_messages"] == valid + invalid)
    assert full["window_size"] == valid
    assert full["total_errors"] == invalid
    assert full["device_distribution"] == dict(devices.most_common())
    assert full["version_distribution"] == {"2.3.0": valid - 15, "2.4.1": 15}
    assert sum(full["location_distribution"].values()) == valid
    assert full["error_rate"] == round(100 * invalid / (valid + invalid), 2)
    assert full["window_seconds"] == 10
    assert full["active_users"] == pytest.approx(len(users), rel=0.02)
    assert full["unique_ips"] == pytest.approx(len(ips), rel=0.02)
    ends = [e["window_end"] for e in events]
    assert ends == sorted(set(ends)), "one event per window end, in order"
    assert redis_client.get(layout.aggregator_lease_key) is None, "lease released on stop"


@pytest.mark.timeout(60)
def test_supervised_child_emits_and_stops_gracefully_on_sigterm(
    kafka_bootstrap: str,
    redis_url: str,
    redis_client: redis.Redis,
    redis_prefix: str,
    new_topic: Callable[..., str],
    unique_group_id: str,
) -> None:
    """How `loginmetrics run` hosts the aggregator: a spawned child of the supervisor."""
    topic = new_topic(1)
    layout = WindowLayout(prefix=redis_prefix, window_seconds=10)
    settings = AggregatorSettings(
        kafka={"bootstrap.servers": kafka_bootstrap},
        redis_url=redis_url,
        layout=layout,
        metrics_topic=topic,
        emit_interval_seconds=1.0,
        lease_seconds=3.0,
    )
    child = multiprocessing.get_context("spawn").Process(
        target=run_aggregator_process, args=(settings, None), name="loginmetrics-aggregator"
    )
    consumer = topic_reader(kafka_bootstrap, topic, group_id=unique_group_id)
    events: list[dict[str, Any]] = []
    child.start()
    try:
        read_events(consumer, lambda seen: len(seen) >= 2, timeout=30, events=events)
        os.kill(child.pid or 0, signal.SIGINT)  # Ctrl-C hits the process group: ignored
        time.sleep(0.5)
        assert child.is_alive(), "a supervised child leaves SIGINT to its supervisor"
        child.terminate()  # SIGTERM, as the supervisor drains
        child.join(15)
    finally:
        if child.is_alive():
            child.kill()
            child.join()
        consumer.close()

    assert child.exitcode == 0
    assert redis_client.get(layout.aggregator_lease_key) is None, "lease released on SIGTERM"
    assert all(e["total_messages"] == 0 for e in events), "an empty window reports zeros"
