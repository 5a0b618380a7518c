"""Offsets that no longer mean what the window says: a recreated input topic, messages removed
before they were read (retention, DeleteRecords), and a partition whose log ends before the
window's applied offset. Each is noticed, logged at WARNING and counted; nothing is skipped
silently and nothing is counted twice."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from loginmetrics.window import WindowLayout
from tests.support import (
    login_stream,
    loginmetrics,
    pipeline_env,
    produce,
    wait_for_leaders,
    wait_for_messages,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

ADMIN_TIMEOUT_S = 30


@contextmanager
def worker(env: dict[str, str], log: Path) -> Iterator[None]:
    with loginmetrics("worker", "--processes", "1", env=env, log=log) as pool:
        yield
    assert pool.returncode == 0, log.read_text()[-3000:]


def messages(count: int, seed: int) -> list[tuple[bytes, bytes | None]]:
    return login_stream(count, users=50, invalid_every=0, seed=seed).messages


def warnings(log: Path) -> list[str]:
    return [line for line in log.read_text().splitlines() if " WARNING " in line]


@pytest.fixture
def setup(
    kafka_bootstrap: str,
    redis_url: str,
    redis_prefix: str,
    unique_group_id: str,
    new_topic: Callable[..., str],
) -> tuple[str, dict[str, str], WindowLayout]:
    source, dlq = new_topic(1), new_topic(1)
    env = pipeline_env(
        kafka_bootstrap,
        redis_url,
        redis_prefix,
        input_topic=source,
        dlq_topic=dlq,
        group_id=unique_group_id,
    )
    return source, env, WindowLayout(prefix=redis_prefix)


def test_a_recreated_topic_is_read_from_its_start(
    kafka_bootstrap: str,
    kafka_admin: AdminClient,
    redis_client: redis.Redis,
    setup: tuple[str, dict[str, str], WindowLayout],
    tmp_path: Path,
) -> None:
    source, env, layout = setup
    produce(kafka_bootstrap, source, messages(300, seed=1))
    with worker(env, tmp_path / "first.log"):
        wait_for_messages(redis_client, layout, 300, timeout=60)

    kafka_admin.delete_topics([source])[source].result(timeout=ADMIN_TIMEOUT_S)
    deadline = time.monotonic() + ADMIN_TIMEOUT_S
    while True:  # the broker deletes in the background: retry until the name is free
        try:
            spec = NewTopic(source, num_partitions=1, replication_factor=1)
            kafka_admin.create_topics([spec])[source].result(timeout=ADMIN_TIMEOUT_S)
            break
        except Exception:
            assert time.monotonic() < deadline, "the topic could not be recreated"
            time.sleep(0.5)
    wait_for_leaders(kafka_admin, source, 1, ADMIN_TIMEOUT_S)
    produce(kafka_bootstrap, source, messages(200, seed=2))  # offsets 0-199 again

    log = tmp_path / "second.log"
    with worker(env, log):
        totals = wait_for_messages(redis_client, layout, 300 + 200, timeout=60)
    assert totals.valid == 500
    assert any(f"topic {source} was recreated" in line for line in warnings(log))


def test_messages_removed_before_they_were_read_are_a_logged_gap(
    kafka_bootstrap: str,
    kafka_admin: AdminClient,
    redis_client: redis.Redis,
    setup: tuple[str, dict[str, str], WindowLayout],
    tmp_path: Path,
) -> None:
    source, env, layout = setup
    produce(kafka_bootstrap, source, messages(100, seed=3))
    with worker(env, tmp_path / "first.log"):
        wait_for_messages(redis_client, layout, 100, timeout=60)
    produce(kafka_bootstrap, source, messages(100, seed=4))  # offsets 100-199, never read...
    futures = kafka_admin.delete_records([TopicPartition(source, 0, 150)])
    for future in futures.values():
        future.result(timeout=ADMIN_TIMEOUT_S)  # ...and 100-149 removed, as retention would

    log = tmp_path / "second.log"
    with worker(env, log):
        wait_for_messages(redis_client, layout, 100 + 50, timeout=60)
    assert any("partition 0: 50 offsets after 99 were removed" in line for line in warnings(log)), (
        warnings(log)
    )


def test_a_partition_that_ends_before_the_applied_offset_is_read_on_from_its_end(
    kafka_bootstrap: str,
    redis_client: redis.Redis,
    setup: tuple[str, dict[str, str], WindowLayout],
    tmp_path: Path,
) -> None:
    source, env, layout = setup
    produce(kafka_bootstrap, source, messages(100, seed=5))  # offsets 0-99
    # The window applied up to 5000 on a log that was then truncated (an unclean leader
    # election, a replaced cluster): offsets 100-5000 are gone, new messages reuse them.
    redis_client.hset(layout.applied_offsets_key(source), "0", "5000")

    log = tmp_path / "worker.log"
    with worker(env, log):
        deadline = time.monotonic() + 30
        while not any("was truncated or replaced" in line for line in warnings(log)):
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        produce(kafka_bootstrap, source, messages(40, seed=6))  # offsets 100-139
        wait_for_messages(redis_client, layout, 40, timeout=60)
    assert any(
        "partition 0 ends at offset 100 but the window applied up to 5000" in line
        and "4901 offsets counted as a gap" in line
        for line in warnings(log)
    ), warnings(log)
    assert redis_client.hget(layout.applied_offsets_key(source), "0") == b"139"
