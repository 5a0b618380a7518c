"""An idle worker pool rides out a Redis crash (SIGKILL, restarted 4 s later from its AOF) and a
broker crash (SIGKILL, restarted 4 s later): messages produced afterwards are counted within
seconds, the totals end exact, and no worker process restarts for the Redis crash.

Idle matters: a worker that consumes nothing makes only one Redis call, the check of its applied
offsets every 2 s, and a check that meets an outage must not leave the consumer paused for good
(issue 19)."""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence

import pytest
import redis

from loginmetrics.cli.traffic import PlannedMessage
from tests.reliability.conftest import PrivateKafka, PrivateRedis, WorkerRun
from tests.reliability.harness import (
    Feeder,
    Source,
    check_dead_letters,
    read_topic,
    tail,
    wait_for_total,
)
from tests.reliability.test_redis_faults import wait_answering
from tests.support import assert_matches, child_pids, loginmetrics, planned_stream, truth_of

pytestmark = [pytest.mark.integration, pytest.mark.reliability, pytest.mark.timeout(150)]

PARTITIONS = 4
PROCESSES = 2
BEFORE, AFTER = 6_000, 3_000  # messages before the outage, and after it
IDLE_S = 3.0  # longer than the 2 s between offset checks: each worker checks while idle
DOWN_S = 4.0
COUNTED_WITHIN_S = 15.0  # from the last new message acknowledged to all of them in the window
HELD_S = 2.0  # wait_for_total checks the window stays put this long once it holds everything


class Stream:
    """A planned stream produced in parts: where each part landed, and what it adds up to."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self._plan = planned_stream(BEFORE + AFTER, users=2_000, invalid_every=30)
        self.produced = 0
        self.dead_letters: dict[Source, str] = {}

    def produce(self, count: int) -> None:
        part = self._plan[self.produced : self.produced + count]
        with Feeder(self.bootstrap, self.topic, part) as feeder:
            feeder.wait_finished(60)
            assert feeder.stop() == len(part)
        self.produced += len(part)
        self.dead_letters |= feeder.expected_dead_letters()

    @property
    def messages(self) -> Sequence[PlannedMessage]:
        return self._plan[: self.produced]


@contextlib.contextmanager
def idle_pool(
    run: WorkerRun, stream: Stream, window: redis.Redis
) -> Iterator[subprocess.Popen[bytes]]:
    """A pool that counted the stream's first part, then sat idle for IDLE_S; stops cleanly."""
    with loginmetrics("worker", "--processes", str(PROCESSES), env=run.env, log=run.log) as pool:
        stream.produce(BEFORE)
        wait_for_total(window, run.layout, BEFORE, timeout=60, log=run.log)
        assert len(child_pids(pool.pid)) == PROCESSES
        time.sleep(IDLE_S)
        yield pool
    assert pool.returncode == 0, tail(run.log)


def counted_within(stream: Stream, window: redis.Redis, run: WorkerRun) -> float:
    """Produce the stream's second part; check the window holds exactly the whole stream within
    COUNTED_WITHIN_S, and every dead letter is there. Returns how long counting took."""
    stream.produce(AFTER)
    acknowledged = time.monotonic()
    totals = wait_for_total(window, run.layout, BEFORE + AFTER, COUNTED_WITHIN_S, run.log)
    counted = time.monotonic() - acknowledged - HELD_S
    assert_matches(totals, truth_of(stream.messages))
    check_dead_letters(read_topic(stream.bootstrap, run.dlq), stream.dead_letters, run.source)
    return counted


def test_an_idle_pool_counts_new_messages_soon_after_redis_restarts_from_its_aof(
    local_kafka: str,
    private_redis: PrivateRedis,
    worker_run: Callable[..., WorkerRun],
) -> None:
    run = worker_run(private_redis.url, PARTITIONS, batch_size=500)
    stream = Stream(local_kafka, run.source)
    client = private_redis.client()
    try:
        with idle_pool(run, stream, client) as pool:
            workers = sorted(child_pids(pool.pid))
            private_redis.kill()
            time.sleep(DOWN_S)
            private_redis.start()
            wait_answering(client)
            seconds = counted_within(stream, client, run)
            assert sorted(child_pids(pool.pid)) == workers, "no worker process restarted"
    finally:
        client.close()
    assert "exited with code" not in run.log.read_text(), tail(run.log)
    print(
        f"idle pool, Redis SIGKILLed and restarted {DOWN_S:.0f} s later: {AFTER} new messages "
        f"counted {seconds:.1f} s after they were acknowledged"
    )


def test_an_idle_pool_counts_new_messages_soon_after_the_broker_restarts(
    private_kafka: PrivateKafka,
    local_redis_url: str,
    redis_client: redis.Redis,
    worker_run: Callable[..., WorkerRun],
) -> None:
    run = worker_run(local_redis_url, PARTITIONS, kafka=private_kafka, batch_size=500)
    stream = Stream(private_kafka.bootstrap, run.source)
    with idle_pool(run, stream, redis_client) as pool:
        private_kafka.kill()
        time.sleep(DOWN_S)
        private_kafka.start()
        seconds = counted_within(stream, redis_client, run)
        assert len(child_pids(pool.pid)) == PROCESSES, "every slot has its worker"
    # A worker may end only the way static membership allows after a broker restart: fenced
    # (librdkafka makes that fatal), then started afresh in its slot (test_broker_restart.py).
    text = run.log.read_text()
    fenced = text.count("the Kafka consumer failed for good")
    assert text.count(" exited with code ") == fenced, tail(run.log)
    print(
        f"idle pool, broker SIGKILLed and restarted {DOWN_S:.0f} s later: {AFTER} new messages "
        f"counted {seconds:.1f} s after they were acknowledged; {fenced} fenced restarts"
    )
