"""A worker frozen in the middle of a batch (SIGSTOP) for longer than its session loses its
partitions to the others; when it wakes up (SIGCONT) its stale batch is refused by the window's
compare-and-set, and the totals stay exact."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

import pytest

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
from tests.support import assert_matches, child_pids, loginmetrics, planned_stream, truth_of

pytestmark = [pytest.mark.integration, pytest.mark.reliability, pytest.mark.timeout(150)]

PARTITIONS = 6
PROCESSES = 3
RATE = 1_500
REDIS_SOCKET_TIMEOUT_S = 5  # worker/process.py: an apply stuck this long raises and is retried


def test_a_worker_that_lost_its_partitions_while_frozen_does_not_apply_its_stale_batch(
    local_kafka: str,
    private_redis: PrivateRedis,
    worker_run: Callable[..., WorkerRun],
) -> None:
    source, dlq, layout, env, log = worker_run(private_redis.url, PARTITIONS, batch_size=100)
    stream = planned_stream(RATE * 100, users=5_000, invalid_every=40)
    client = private_redis.client()

    with (
        loginmetrics("worker", "--processes", str(PROCESSES), env=env, log=log) as pool,
        Feeder(local_kafka, source, stream, rate=RATE) as feeder,
    ):
        wait_until(
            lambda: len(applied_offsets(client, layout, source)) == PARTITIONS,
            60,
            "every partition to be applied to",
            log,
        )
        workers = child_pids(pool.pid)
        assert len(workers) == PROCESSES

        # Hold every worker between fold and apply: writes to the window block until the apply
        # times out, and the worker retries that same batch with the same expected offsets.
        client.client_pause(60_000, all=False)
        victim = None

        def a_worker_is_holding_a_batch() -> bool:
            nonlocal victim
            for pid in workers:
                if any("trying to apply a batch" in line for line in log_lines(log, pid)):
                    victim = pid
                    return True
            return False

        wait_until(a_worker_is_holding_a_batch, REDIS_SOCKET_TIMEOUT_S + 20, "a stuck apply", log)
        assert victim is not None
        os.kill(victim, signal.SIGSTOP)
        try:
            # Drop every worker's connection: an apply the victim re-sent just before it froze
            # must not run when writes resume (it would still be in time, not stale).
            client.client_kill_filter(_type="normal", skipme=True)
            frozen_at = applied_offsets(client, layout, source)
            client.client_unpause()

            # The group evicts the frozen worker after its session timeout (10 s); the others
            # take its partitions over and apply past the offsets it expects to find.
            wait_until(
                lambda: all(
                    applied_offsets(client, layout, source).get(p, -1) > frozen_at.get(p, -1)
                    for p in range(PARTITIONS)
                ),
                60,
                "the other workers to apply past the frozen one on every partition",
                log,
            )
        finally:
            os.kill(victim, signal.SIGCONT)
        wait_until(
            lambda: any("window refused batch" in line for line in log_lines(log, victim)),
            30,
            "the woken worker's stale batch to be refused",
            log,
        )
        produced = feeder.stop()
        totals = wait_for_total(client, layout, produced, timeout=90, log=log)
        assert victim in child_pids(pool.pid), "the woken worker carries on"
    assert pool.returncode == 0, tail(log)
    client.close()

    truth = truth_of(feeder.produced_messages)
    assert_matches(totals, truth)
    assert "exited with code" not in log.read_text()
    refused = [line for line in log_lines(log, victim) if "window refused batch" in line]
    duplicates, _codes = check_dead_letters(
        read_topic(local_kafka, dlq), feeder.expected_dead_letters(), source
    )
    print(
        f"{produced} messages ({truth.invalid} unusable); worker {victim} frozen, "
        f"{len(refused)} stale batch(es) refused: {refused[0].split(': ', 1)[1]}; "
        f"{duplicates} duplicate dead letters"
    )
