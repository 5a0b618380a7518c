"""The Kafka broker stops and comes back mid-stream (a private broker: the shared one serves
other tests): workers and the aggregator recover by themselves, the window ends exact, and the
aggregator's metric events report the ground truth, each window end once."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.reliability.conftest import PrivateKafka, WorkerRun
from tests.reliability.harness import (
    Feeder,
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

pytestmark = [pytest.mark.integration, pytest.mark.reliability, pytest.mark.timeout(200)]

PARTITIONS = 4
RATE = 3_000
MESSAGES = 45_000  # ~15 s of stream
OUTAGE_S = 4.0


def epoch(iso_utc: str) -> float:
    return datetime.fromisoformat(iso_utc).replace(tzinfo=UTC).timestamp()


def test_workers_and_aggregator_ride_out_a_broker_restart(
    private_kafka: PrivateKafka,
    local_redis_url: str,
    redis_client: redis.Redis,
    tmp_path: Path,
    worker_run: Callable[..., WorkerRun],
) -> None:
    bootstrap = private_kafka.bootstrap
    metrics = f"test-{uuid.uuid4().hex}"
    private_kafka.create_topic(metrics, 1)
    source, dlq, layout, env, worker_log = worker_run(
        local_redis_url,
        PARTITIONS,
        kafka=private_kafka,
        metrics_topic=metrics,
        batch_size=300,
        emit_interval=1,
        lease_seconds=3,
    )
    aggregator_log = tmp_path / "aggregator.log"
    stream = planned_stream(MESSAGES, users=5_000, invalid_every=60)

    with (
        loginmetrics("worker", "--processes", "2", env=env, log=worker_log) as pool,
        loginmetrics("aggregate", env=env, log=aggregator_log) as aggregator,
        Feeder(bootstrap, source, stream, rate=RATE) as feeder,
    ):
        wait_until(
            lambda: current_totals(redis_client, layout).total_messages >= 4 * RATE,
            60,
            "the stream to flow",
            worker_log,
        )
        workers = sorted(child_pids(pool.pid))
        private_kafka.stop()
        stopped_at = time.time()
        time.sleep(OUTAGE_S)
        private_kafka.start()
        back_at = time.time()

        feeder.wait_finished(90)
        produced = feeder.stop()
        totals = wait_for_total(redis_client, layout, produced, timeout=90, log=worker_log)
        truth = truth_of(feeder.produced_messages)

        # The aggregator's events catch up too: one reports the whole stream.
        events: list[dict[str, Any]] = []

        def an_event_reports_everything() -> bool:
            events[:] = [json.loads(v) for v in read_topic(bootstrap, metrics)]
            return any(e["total_messages"] == produced for e in events)

        wait_until(
            an_event_reports_everything, 30, "a metric event of the whole stream", worker_log
        )
        # A worker dies only the one way static membership allows: the restarted coordinator
        # fences a member that rejoins (librdkafka makes that fatal), the process exits and the
        # supervisor starts a fresh one in its slot at once. Nothing else may end a worker.
        restarts = worker_log.read_text().count(" exited with code ")
        fenced = worker_log.read_text().count("the Kafka consumer failed for good")
        assert restarts == fenced, tail(worker_log)
        assert len(child_pids(pool.pid)) == len(workers), "every slot has its worker"
        assert aggregator.poll() is None, tail(aggregator_log)
    assert pool.returncode == 0, tail(worker_log)
    assert aggregator.returncode == 0, tail(aggregator_log)

    assert_matches(totals, truth)
    duplicates, _codes = check_dead_letters(
        read_topic(bootstrap, dlq), feeder.expected_dead_letters(), source
    )
    ends = [e["window_end"] for e in events]
    assert len(ends) == len(set(ends)), "a window end was emitted twice"
    assert ends == sorted(ends)
    assert any(epoch(end) > back_at for end in ends), "events after the restart"
    final = next(e for e in events if e["total_messages"] == produced)
    assert final["total_errors"] == truth.invalid
    assert final["window_size"] == truth.valid
    assert final["device_distribution"] == dict(truth.devices)
    assert final["location_distribution"] == dict(truth.locales)
    assert final["active_users"] == pytest.approx(len(truth.users), rel=0.02)
    print(
        f"{produced} messages ({truth.invalid} unusable); broker down "
        f"{back_at - stopped_at:.1f} s; {len(events)} metric events, "
        f"{sum(1 for end in ends if epoch(end) > back_at)} after the restart; "
        f"{duplicates} duplicate dead letters"
    )
