"""A worker SIGKILLed after a healthy run is restarted at once in its slot and, as the same static
member of the group, takes its own partitions back without waiting for the session timeout and
without a rebalance that would move them to the other worker; the totals stay exact."""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from loginmetrics.runtime.supervisor import HEALTHY_RUN_SECONDS
from tests.reliability.conftest import WorkerRun
from tests.reliability.harness import (
    Feeder,
    applied_offsets,
    check_dead_letters,
    log_lines,
    read_topic,
    tail,
    wait_for_total,
    wait_until,
)
from tests.support import assert_matches, child_pids, loginmetrics, planned_stream, truth_of

pytestmark = [pytest.mark.integration, pytest.mark.reliability, pytest.mark.timeout(180)]

PARTITIONS = 4
RATE = 4_000
MESSAGES = RATE * 25  # long enough for a healthy run, the kill and the recovery
SESSION_TIMEOUT_S = 10  # worker/settings.py: what a dynamic member's partitions would wait


def owned(lines: list[str]) -> set[int]:
    """The partitions a worker owns after its ``assigned topic[p], ...`` and
    ``revoked [p, ...]`` log lines."""
    partitions: set[int] = set()
    for line in lines:
        if " assigned " in line:
            listed = line.split(" assigned ", 1)[1]  # the log prefix has a [pid] too
            partitions |= {int(p) for p in re.findall(r"\[(\d+)\]", listed)}
        elif match := re.search(r" revoked \[([\d, ]*)\]", line):
            partitions -= {int(p) for p in match.group(1).split(",") if p.strip()}
    return partitions


def assignments(log: Path, pid: int) -> int:
    return sum(" assigned " in line for line in log_lines(log, pid))


def test_a_killed_worker_takes_its_partitions_back_before_the_session_times_out(
    local_kafka: str,
    local_redis_url: str,
    redis_client: redis.Redis,
    worker_run: Callable[..., WorkerRun],
) -> None:
    source, dlq, layout, env, log = worker_run(local_redis_url, PARTITIONS)
    stream = planned_stream(MESSAGES, users=5_000, invalid_every=50)

    with (
        loginmetrics("worker", "--processes", "2", env=env, log=log) as pool,
        Feeder(local_kafka, source, stream, rate=RATE) as feeder,
    ):
        started = time.monotonic()
        wait_until(
            lambda: len(applied_offsets(redis_client, layout, source)) == PARTITIONS,
            60,
            "every partition to be applied to",
            log,
        )
        victim, survivor = sorted(child_pids(pool.pid))
        wait_until(
            lambda: all(owned(log_lines(log, pid)) for pid in (victim, survivor)),
            30,
            "both workers to own partitions",
            log,
        )
        theirs = owned(log_lines(log, victim))
        # After a healthy run the supervisor restarts a crashed child at once.
        time.sleep(max(0.0, HEALTHY_RUN_SECONDS + 0.5 - (time.monotonic() - started)))

        survivor_assignments = assignments(log, survivor)
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()
        time.sleep(0.1)  # an apply already sent to Redis lands first
        before = applied_offsets(redis_client, layout, source)
        wait_until(
            lambda: all(
                applied_offsets(redis_client, layout, source)[p] > before[p] for p in theirs
            ),
            30,
            "the victim's partitions to be applied again",
            log,
        )
        recovery = time.monotonic() - killed_at
        produced = feeder.stop()
        totals = wait_for_total(redis_client, layout, produced, timeout=90, log=log)
        restarted = [pid for pid in child_pids(pool.pid) if pid != survivor]
    assert pool.returncode == 0, tail(log)

    assert recovery < SESSION_TIMEOUT_S - 2, f"took {recovery:.1f} s: {tail(log)}"
    assert len(restarted) == 1
    assert victim not in restarted
    # Everything it was ever assigned (its drain at the end revokes it all again).
    reclaimed = set().union(*(owned([line]) for line in log_lines(log, restarted[0])))
    assert reclaimed == theirs, "the restarted child took the same partitions back"
    # No rebalance reached the other worker: nothing was assigned to it after the kill.
    assert assignments(log, survivor) == survivor_assignments
    assert_matches(totals, truth_of(feeder.produced_messages))
    duplicates, _codes = check_dead_letters(
        read_topic(local_kafka, dlq), feeder.expected_dead_letters(), source
    )
    print(
        f"{produced} messages; worker {victim} killed, partitions {sorted(theirs)} applied again "
        f"after {recovery:.2f} s by its successor {restarted[0]}; {duplicates} duplicate letters"
    )
