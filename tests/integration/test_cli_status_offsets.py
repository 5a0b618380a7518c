"""``loginmetrics status`` and ``offsets reset`` on the real broker and Redis: the applied offsets
written through the window module, the commands run as an operator would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import pytest
import redis
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from loginmetrics.window import PartitionAdvance, WindowIncrements, WindowLayout, WindowWriter
from loginmetrics.window.applied_offsets import AppliedOffsets
from loginmetrics.worker.topic_inspector import KafkaTopicInspector

pytestmark = pytest.mark.integration

PER_PARTITION = 30


@pytest.fixture
def topic(kafka_bootstrap: str, new_topic: Callable[..., str]) -> str:
    """A 2-partition topic holding ``PER_PARTITION`` messages in each partition."""
    name = new_topic(2)
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for partition in (0, 1):
        for n in range(PER_PARTITION):
            producer.produce(name, b"{}", key=str(n).encode(), partition=partition)
    assert producer.flush(30) == 0
    return name


@pytest.fixture
def env(
    kafka_bootstrap: str, redis_url: str, redis_prefix: str, topic: str, unique_group_id: str
) -> dict[str, str]:
    return {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "REDIS_URL": redis_url,
        "LOGINMETRICS_REDIS_PREFIX": redis_prefix,
        "LOGINMETRICS_INPUT_TOPIC": topic,
        "LOGINMETRICS_GROUP_ID": unique_group_id,
    }


@pytest.fixture
def writer(
    kafka_bootstrap: str, redis_client: redis.Redis, redis_prefix: str, topic: str
) -> WindowWriter:
    """The window as a worker left it: partition 0 applied up to 9, partition 1 up to 19."""
    writer = WindowWriter(redis_client, WindowLayout(prefix=redis_prefix), topic)
    topic_id = KafkaTopicInspector({"bootstrap.servers": kafka_bootstrap}, None, topic).topic_id()
    assert topic_id is not None
    writer.adopt_topic(topic_id)
    advances = [PartitionAdvance(0, None, 9), PartitionAdvance(1, None, 19)]
    assert writer.apply_batch(advances, WindowIncrements(valid=30)).applied
    return writer


def loginmetrics(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "loginmetrics", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def committed(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    request = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in (0, 1)])
    result = admin.list_consumer_group_offsets([request])[group].result(timeout=30)
    return {tp.partition: tp.offset for tp in result.topic_partitions}


@pytest.fixture
def group_member(
    kafka_bootstrap: str, topic: str, unique_group_id: str
) -> Iterator[Callable[[], None]]:
    """Call it to have a consumer hold the group (as a running worker would)."""
    consumers: list[Consumer] = []

    def join() -> None:
        consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": unique_group_id})
        consumer.subscribe([topic])
        deadline = time.monotonic() + 30
        while not consumer.assignment() and time.monotonic() < deadline:
            consumer.poll(0.2)
        assert consumer.assignment(), "the consumer never joined the group"
        consumers.append(consumer)

    yield join
    for consumer in consumers:
        consumer.close()


@pytest.mark.timeout(120)
def test_status_reports_the_applied_offsets_lag_and_incarnation(
    env: dict[str, str], writer: WindowWriter, redis_client: redis.Redis, redis_prefix: str
) -> None:
    result = loginmetrics(env, "status", "--output", "json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    rows = {row["partition"]: row for row in report["partitions"]}
    assert (rows[0]["applied_offset"], rows[0]["high_watermark"]) == (9, PER_PARTITION)
    assert (rows[0]["lag_messages"], rows[1]["lag_messages"]) == (20, 10)
    assert report["lag"]["messages"] == 30
    assert report["topic"]["id"] == report["topic"]["window_topic_id"]
    assert report["aggregator"]["leader"] is None
    assert report["group"]["members"] == []

    text = loginmetrics(env, "status")
    assert text.returncode == 0, text.stderr
    assert "the window's offsets belong to it" in text.stdout


@pytest.mark.timeout(120)
def test_reset_moves_the_workers_and_the_group_commit(
    env: dict[str, str],
    writer: WindowWriter,
    kafka_bootstrap: str,
    redis_client: redis.Redis,
    redis_prefix: str,
    topic: str,
    unique_group_id: str,
) -> None:
    offsets = AppliedOffsets(redis_client, WindowLayout(prefix=redis_prefix), topic)
    incarnation = offsets.topic_id()

    dry = loginmetrics(env, "offsets", "reset", "--to-offset", "5")
    assert dry.returncode == 1
    assert offsets.read([0, 1]) == {0: 9, 1: 19}

    done = loginmetrics(env, "offsets", "reset", "--to-offset", "5", "--yes")
    assert done.returncode == 0, done.stderr
    assert offsets.read([0, 1]) == {0: 4, 1: 4}
    assert committed(kafka_bootstrap, unique_group_id, topic) == {0: 5, 1: 5}
    assert offsets.topic_id() == incarnation

    latest = loginmetrics(env, "offsets", "reset", "--to-latest", "--partition", "1", "--yes")
    assert latest.returncode == 0, latest.stderr
    assert offsets.read([0, 1]) == {0: 4, 1: PER_PARTITION - 1}
    shown = json.loads(loginmetrics(env, "offsets", "show", "-o", "json").stdout)
    assert [row["next_offset"] for row in shown["partitions"]] == [5, PER_PARTITION]


@pytest.mark.timeout(120)
def test_reset_is_refused_while_a_member_holds_the_group(
    env: dict[str, str],
    writer: WindowWriter,
    redis_client: redis.Redis,
    redis_prefix: str,
    topic: str,
    group_member: Callable[[], None],
) -> None:
    group_member()
    refused = loginmetrics(env, "offsets", "reset", "--to-earliest", "--yes")
    assert refused.returncode == 1
    assert "1 member(s)" in refused.stderr
    assert "Stop them first" in refused.stderr
    offsets = AppliedOffsets(redis_client, WindowLayout(prefix=redis_prefix), topic)
    assert offsets.read([0, 1]) == {0: 9, 1: 19}
