"""SIGKILL a random worker every few seconds while 200,000 logins stream in: the window ends
exactly at the ground truth and every unusable message is in the dead-letter queue."""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Callable

import pytest
import redis

from tests.reliability.conftest import WorkerRun
from tests.reliability.harness import (
    Feeder,
    check_dead_letters,
    read_topic,
    tail,
    wait_for_total,
    wait_until,
)
from tests.support import assert_matches, child_pids, loginmetrics, planned_stream, truth_of

pytestmark = [pytest.mark.integration, pytest.mark.reliability, pytest.mark.timeout(240)]

MESSAGES = 200_000
RATE = 8_000  # messages per second: the stream lasts ~25 s, long enough for several kills
KILL_EVERY_S = 3.5
PROCESSES = 3


def test_random_sigkills_lose_and_double_nothing(
    local_kafka: str,
    local_redis_url: str,
    redis_client: redis.Redis,
    worker_run: Callable[..., WorkerRun],
) -> None:
    source, dlq, layout, env, log = worker_run(
        local_redis_url,
        6,
        batch_size=500,  # many batches, so most kills land between a fold and its apply
    )
    stream = planned_stream(MESSAGES, users=20_000, invalid_every=100)
    rng = random.Random(3)
    kills: list[int] = []

    with (
        loginmetrics("worker", "--processes", str(PROCESSES), env=env, log=log) as pool,
        Feeder(local_kafka, source, stream, rate=RATE) as feeder,
    ):
        time.sleep(KILL_EVERY_S)
        while not feeder.finished.is_set():
            alive = child_pids(pool.pid)
            if alive:
                victim = rng.choice(alive)
                os.kill(victim, signal.SIGKILL)
                kills.append(victim)
            time.sleep(KILL_EVERY_S * rng.uniform(0.7, 1.3))
        produced = feeder.stop()
        assert produced == MESSAGES

        # The last victim's partitions wait for its session to time out (10 s), then catch up.
        totals = wait_for_total(redis_client, layout, MESSAGES, timeout=120, log=log)
        # A worker killed often is restarted after a growing delay (worker/supervisor.py).
        wait_until(
            lambda: len(child_pids(pool.pid)) == PROCESSES, 40, "every victim's restart", log
        )
    assert pool.returncode == 0, tail(log)

    truth = truth_of(stream)
    assert_matches(totals, truth)
    assert len(kills) >= 5, f"only {len(kills)} kills: the stream ended too soon"
    assert log.read_text().count("exited with code -9") == len(kills)
    duplicates, codes = check_dead_letters(
        read_topic(local_kafka, dlq), feeder.expected_dead_letters(), source
    )
    assert codes.keys() == truth.invalid_codes.keys()
    print(
        f"{MESSAGES} messages ({truth.invalid} unusable), {len(kills)} SIGKILLs, "
        f"{duplicates} duplicate dead letters (same source)"
    )
