"""Redis goes away for several seconds mid-stream (a saved shutdown, then a restart): the
workers pause, back off and resume by themselves, the totals end exact, and Kafka never holds a
committed offset past what the window has applied."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
import redis
from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient

from loginmetrics.window import WindowLayout
from tests.reliability.conftest import PrivateRedis, WorkerRun
from tests.reliability.harness import (
    Feeder,
    applied_offsets,
    check_dead_letters,
    read_topic,
    tail,
    wait_for_total,
    wait_until,
)
from tests.support import (
    assert_matches,
    child_pids,
    current_totals,
    loginmetrics,
    planned_stream,
    truth_of,
)

pytestmark = [pytest.mark.integration, pytest.mark.reliability, pytest.mark.timeout(150)]

PARTITIONS = 4
PROCESSES = 2
RATE = 3_000
MESSAGES = 45_000  # ~15 s of stream
OUTAGE_S = 6.0


class CommitWatcher:
    """Samples the group's committed offsets (then the window's applied ones) in a thread.

    Reading Kafka first and Redis second makes every sample conservative: applied offsets only
    grow, so a commit past the applied offset read just after it is a commit of unapplied work.
    While Redis is down only the commits are sampled.
    """

    def __init__(
        self, bootstrap: str, group: str, topic: str, window: redis.Redis, layout: WindowLayout
    ) -> None:
        self._admin = AdminClient({"bootstrap.servers": bootstrap})
        self._request = ConsumerGroupTopicPartitions(
            group, [TopicPartition(topic, p) for p in range(PARTITIONS)]
        )
        self._group = group
        self._topic = topic
        self._window = window
        self._layout = layout
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="commit-watcher", daemon=True)
        # (monotonic time, committed next offsets, applied offsets or None while Redis is down)
        self.samples: list[tuple[float, dict[int, int], dict[int, int] | None]] = []

    def committed(self) -> dict[int, int]:
        future = self._admin.list_consumer_group_offsets([self._request])[self._group]
        partitions = future.result(timeout=10).topic_partitions
        return {tp.partition: tp.offset for tp in partitions if tp.offset >= 0}

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            committed = self.committed()
            try:
                applied: dict[int, int] | None = applied_offsets(
                    self._window, self._layout, self._topic
                )
            except redis.RedisError:
                applied = None
            self.samples.append((time.monotonic(), committed, applied))

    def __enter__(self) -> CommitWatcher:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(15)


def commits_past(committed: dict[int, int], applied: dict[int, int]) -> dict[int, int]:
    """Partitions whose committed next offset is past the applied offset + 1."""
    return {p: o for p, o in committed.items() if o > applied.get(p, -1) + 1}


def test_workers_pause_through_a_redis_outage_and_commit_nothing_unapplied(
    local_kafka: str,
    private_redis: PrivateRedis,
    unique_group_id: str,
    worker_run: Callable[..., WorkerRun],
) -> None:
    source, dlq, layout, env, log = worker_run(private_redis.url, PARTITIONS, batch_size=300)
    stream = planned_stream(MESSAGES, users=5_000, invalid_every=60)
    client = private_redis.client()
    watcher_client = private_redis.client()

    with (
        loginmetrics("worker", "--processes", str(PROCESSES), env=env, log=log) as pool,
        Feeder(local_kafka, source, stream, rate=RATE) as feeder,
        CommitWatcher(local_kafka, unique_group_id, source, watcher_client, layout) as watcher,
    ):
        wait_until(
            lambda: (
                current_totals(client, layout).total_messages >= 4 * RATE
                and len(applied_offsets(client, layout, source)) == PARTITIONS
            ),
            60,
            "the stream to flow into every partition",
            log,
        )
        workers = sorted(child_pids(pool.pid))

        # Freeze writes, read what the window holds, save it and stop: what Redis holds during
        # the outage is exactly `at_shutdown`, and a restart brings exactly that back.
        client.client_pause(30_000, all=False)
        at_shutdown = applied_offsets(client, layout, source)
        private_redis.shutdown_saving()
        down_from = time.monotonic()
        time.sleep(OUTAGE_S)
        private_redis.start()
        down_until = time.monotonic()
        restored = applied_offsets(client, layout, source)
        assert all(restored[p] >= offset for p, offset in at_shutdown.items()), "data survived"

        wait_until(lambda: "Redis is back" in log.read_text(), 30, "the workers to resume", log)
        feeder.wait_finished(60)
        produced = feeder.stop()
        totals = wait_for_total(client, layout, produced, timeout=90, log=log)
        assert sorted(child_pids(pool.pid)) == workers, "no worker died of the outage"
    assert pool.returncode == 0, tail(log)

    final_applied = applied_offsets(client, layout, source)
    final_committed = watcher.committed()
    assert not commits_past(final_committed, final_applied)
    client.close()
    watcher_client.close()

    during = [committed for at, committed, _ in watcher.samples if down_from <= at <= down_until]
    assert len(during) >= OUTAGE_S / 0.5, "the outage was sampled"
    # What Redis held through the outage is what it saved and brought back: `restored`. It can
    # be ahead of `at_shutdown` (an apply the pause held back may run as Redis shuts down; the
    # worker then gets its reply and commits it), never behind.
    for committed in during:
        assert not commits_past(committed, restored), (committed, restored)
    checked = [(c, a) for _, c, a in watcher.samples if a is not None]
    for committed, applied in checked:
        assert not commits_past(committed, applied), (committed, applied)

    text = log.read_text()
    assert "consumption paused" in text
    assert "exited with code" not in text
    truth = truth_of(feeder.produced_messages)
    assert_matches(totals, truth)
    duplicates, _codes = check_dead_letters(
        read_topic(local_kafka, dlq), feeder.expected_dead_letters(), source
    )
    print(
        f"{produced} messages ({truth.invalid} unusable); "
        f"Redis down {down_until - down_from:.1f} s; "
        f"{len(during)} commit samples during the outage, {len(checked)} beside applied offsets; "
        f"{duplicates} duplicate dead letters; final commits "
        f"{'at' if final_committed == {p: o + 1 for p, o in final_applied.items()} else 'behind'}"
        " the applied offsets"
    )
