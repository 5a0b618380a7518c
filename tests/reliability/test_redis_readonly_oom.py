"""Redis turns read-only for 8 s (it becomes the replica of a primary nobody runs, as after a
failover, then is promoted back) and refuses writes for 6 s (out of memory, noeviction) while
two worker processes consume a stream with unusable messages. Both are "not now": the workers
pause, keep polling, resume by themselves, and none of them restarts; the totals end exact and
every dead letter is in the DLQ exactly once."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import redis

from tests.reliability.conftest import PrivateRedis, WorkerRun
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
from tests.support import (
    assert_matches,
    child_pids,
    current_totals,
    loginmetrics,
    planned_stream,
    truth_of,
)

pytestmark = [pytest.mark.integration, pytest.mark.reliability, pytest.mark.timeout(180)]

PARTITIONS = 4
PROCESSES = 2
RATE = 3_000
MESSAGES = 75_000  # ~25 s of stream: both faults and the recoveries fall inside it
READONLY_S = 8.0
OOM_S = 6.0
UNREACHABLE_PRIMARY = ("127.0.0.1", 1)  # a port nobody listens on


@contextmanager
def read_only(admin: redis.Redis) -> Iterator[None]:
    """The server follows a primary it cannot reach: writes get READONLY, reads still work."""
    admin.replicaof(*UNREACHABLE_PRIMARY)
    try:
        yield
    finally:
        admin.replicaof("NO", "ONE")


@contextmanager
def out_of_memory(admin: redis.Redis) -> Iterator[None]:
    """maxmemory below what the server uses, nothing evictable: every write gets OOM."""
    previous = str(admin.config_get("maxmemory")["maxmemory"])
    assert admin.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
    admin.config_set("maxmemory", 1)
    try:
        yield
    finally:
        admin.config_set("maxmemory", previous)


def growing(client: redis.Redis, run: WorkerRun) -> Callable[[], bool]:
    """A condition: the window holds more messages than when it was made."""
    start = current_totals(client, run.layout).total_messages
    return lambda: current_totals(client, run.layout).total_messages > start + RATE


def test_readonly_and_oom_pause_the_workers_without_a_restart_or_a_lost_message(
    local_kafka: str,
    private_redis: PrivateRedis,
    worker_run: Callable[..., WorkerRun],
) -> None:
    run = worker_run(private_redis.url, PARTITIONS, batch_size=300)
    source, dlq, layout, env, log = run
    stream = planned_stream(MESSAGES, users=5_000, invalid_every=60)
    client = private_redis.client()
    admin = private_redis.client()
    faults: dict[str, float] = {}

    with (
        loginmetrics("worker", "--processes", str(PROCESSES), env=env, log=log) as pool,
        Feeder(local_kafka, source, stream, rate=RATE) as feeder,
    ):
        wait_until(
            lambda: (
                current_totals(client, layout).total_messages >= 2 * RATE
                and len(applied_offsets(client, layout, source)) == PARTITIONS
            ),
            60,
            "the stream to flow into every partition",
            log,
        )
        workers = sorted(child_pids(pool.pid))
        assert len(workers) == PROCESSES
        # Both members hold partitions: the faults strike a settled group. (A rebalance during
        # a fault is safe too, but a batch refused after it may send its dead letters twice.)
        wait_until(
            lambda: all(
                any(f"assigned {source}[" in line for line in log_lines(log, pid))
                for pid in workers
            ),
            60,
            "both workers to hold partitions",
            log,
        )

        started = time.monotonic()
        with read_only(admin):
            held = applied_offsets(client, layout, source)  # reads still answer
            time.sleep(READONLY_S)
            assert applied_offsets(client, layout, source) == held, "nothing was written"
        faults["READONLY"] = time.monotonic() - started
        wait_until(growing(client, run), 30, "the workers to resume after READONLY", log)

        started = time.monotonic()
        with out_of_memory(admin):
            time.sleep(OOM_S)
        faults["OOM"] = time.monotonic() - started
        wait_until(growing(client, run), 30, "the workers to resume after OOM", log)

        feeder.wait_finished(90)
        produced = feeder.stop()
        totals = wait_for_total(client, layout, produced, timeout=90, log=log)
        assert sorted(child_pids(pool.pid)) == workers, "no worker process restarted"
    assert pool.returncode == 0, tail(log)
    client.close()
    admin.close()

    text = log.read_text()
    assert "exited with code" not in text
    assert "You can't write against a read only replica" in text
    assert "command not allowed when used memory" in text
    assert "consumption paused" in text
    assert text.count("Redis is back after") >= PROCESSES, "each worker resumed by itself"
    truth = truth_of(feeder.produced_messages)
    assert_matches(totals, truth)
    duplicates, codes = check_dead_letters(
        read_topic(local_kafka, dlq), feeder.expected_dead_letters(), source
    )
    assert duplicates == 0, "every dead letter exactly once"
    print(
        f"{produced} messages ({truth.invalid} unusable, {sum(codes.values())} dead letters); "
        f"READONLY {faults['READONLY']:.1f} s, OOM {faults['OOM']:.1f} s; "
        f"workers {workers} never restarted"
    )
