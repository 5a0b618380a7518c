"""The worker's recovery paths where a review found defects, each on the fake consumer and
fakeredis against the stream's own ground truth: an offset check that meets a Redis outage, a
recreated topic, a fatal consumer event while waiting, and a position reset under the worker."""

from __future__ import annotations

import logging
from collections import Counter

import pytest
import redis

from loginmetrics.worker.batch_step import AUDIT_SECONDS, LoopState
from loginmetrics.worker.consumer_errors import FatalConsumerError
from loginmetrics.worker.owned_partitions import Phase
from tests.worker.fake_kafka import FakeClock, FakeInspector
from tests.worker.loop_support import (
    FATAL_FAILURES,
    FatalRecord,
    Logs,
    Stream,
    Worker,
    assert_exact,
    idle,
    make_stream,
    window_counts,
)


def first_part(stream: Stream, share: float) -> Logs:
    """Logs holding the first ``share`` of each partition of ``stream`` (grown by ``grow``)."""
    return {p: log[: int(len(log) * share)] for p, log in stream.logs.items()}


def grow(logs: Logs, stream: Stream) -> None:
    """The rest of ``stream`` arrives in ``logs``, in place (the consumer reads these lists)."""
    for partition, log in stream.logs.items():
        logs[partition].extend(log[len(logs[partition]) :])


def test_an_idle_worker_whose_offset_check_meets_a_redis_outage_resumes_after_it(
    client: redis.Redis, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    stream = make_stream()
    logs = first_part(stream, 0.5)
    worker = Worker(client, logs, clock)
    worker.consumer.rebalance(assign=[0, 1])
    worker.drain(logs)
    worker.writer.fail_for(5.0, redis.ConnectionError("Connection refused"))

    with caplog.at_level(logging.INFO):
        idle(worker, AUDIT_SECONDS + 1)  # the offset check is the only Redis call: it fails
        assert worker.writer.failed_calls > 0
        assert worker.consumer.paused == {0, 1}
        assert worker.shell.batch.state is LoopState.WAITING
        idle(worker, 6.0)  # Redis is back; still nothing new to consume
    assert not worker.shell.batch.waiting
    assert worker.consumer.paused == set(), "resumed though nothing else was pending"
    assert "Redis is back after" in caplog.text

    grow(logs, stream)
    worker.drain(logs)
    assert_exact(client, stream)


def test_a_recreated_topic_found_by_a_position_reset_sends_every_new_dead_letter(
    client: redis.Redis, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    old, new = make_stream(partitions=1, count=100), make_stream(partitions=1, count=60)
    logs: Logs = {0: list(old.logs[0])}
    inspector = FakeInspector(logs)
    worker = Worker(client, logs, clock, inspector)
    worker.consumer.rebalance(assign=[0])
    worker.drain(logs)

    # Deleted and created again: new messages at the old offsets; librdkafka finds its position
    # out of range and resets it to the start, with no rebalance.
    logs[0][:] = new.logs[0]
    inspector.id = "topic-2"
    worker.consumer.positions[0] = 0
    with caplog.at_level(logging.WARNING):
        worker.drain(logs)
    assert "the consumer went back to offset 0" in caplog.text
    assert "was recreated" in caplog.text
    # Every invalid message of both incarnations has its letter, though the new ones sit at
    # offsets whose letters the old topic had confirmed.
    assert worker.letters() == Counter(old.invalid) + Counter(new.invalid)
    assert window_counts(client) == (old.valid + new.valid, len(old.invalid) + len(new.invalid))
    assert worker.shell.batch.applied == {0: len(new.logs[0]) - 1}


def test_a_recreated_topic_found_on_assignment_moves_the_partitions_kept_too(
    client: redis.Redis, clock: FakeClock
) -> None:
    old, new = make_stream(partitions=2, count=200), make_stream(partitions=2, count=120)
    logs: Logs = {p: list(log) for p, log in old.logs.items()}
    inspector = FakeInspector(logs)
    worker = Worker(client, logs, clock, inspector)
    worker.consumer.rebalance(assign=[0, 1])
    worker.drain(logs)

    for partition, log in new.logs.items():
        logs[partition][:] = log
    inspector.id = "topic-2"
    # Partition 1 moves (the group saw the new topic); partition 0 stays with this worker, its
    # position still past the new topic's end.
    worker.consumer.rebalance(revoke=[1], assign=[1])
    worker.drain(logs)
    assert worker.letters() == Counter(old.invalid) + Counter(new.invalid)
    assert window_counts(client) == (old.valid + new.valid, len(old.invalid) + len(new.invalid))


@pytest.mark.parametrize("failure", FATAL_FAILURES, ids=["fatal-event", "fenced"])
def test_a_fatal_consumer_event_ends_the_process_while_the_loop_waits(
    client: redis.Redis, clock: FakeClock, failure: object
) -> None:
    stream = make_stream()
    worker = Worker(client, stream.logs, clock)
    worker.consumer.rebalance(assign=[0, 1])
    worker.run_until(lambda: worker.shell.stats.batches >= 2)
    worker.writer.fail_for(1e9, redis.ConnectionError("Connection refused"))
    worker.run_until(lambda: worker.shell.batch.state is LoopState.WAITING)

    worker.consumer.injected.append(FatalRecord(failure))  # type: ignore[arg-type]
    with pytest.raises(FatalConsumerError, match="failed for good"):
        worker.run_until(lambda: False, max_steps=50)


def test_a_position_reset_under_the_worker_is_logged_and_counts_nothing_twice(
    client: redis.Redis, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    stream = make_stream(partitions=1, count=300)
    logs = first_part(stream, 0.5)
    worker = Worker(client, logs, clock, FakeInspector(logs))
    worker.consumer.rebalance(assign=[0])
    worker.drain(logs)

    worker.consumer.positions[0] = 0  # an offset out of range reset to the earliest
    grow(logs, stream)
    with caplog.at_level(logging.WARNING):
        worker.drain(logs)
    assert "the consumer went back to offset 0, though the window applied up to 149" in caplog.text
    assert (0, 150) in worker.consumer.seeks, "placed again where the window is"
    assert_exact(client, stream)
    assert worker.letters() == Counter(dict.fromkeys(stream.invalid, 1))


def test_a_reset_onto_a_truncated_partition_counts_the_gap_and_reads_on_from_its_end(
    client: redis.Redis, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    stream = make_stream(partitions=1, count=100)
    logs: Logs = {0: list(stream.logs[0])}
    worker = Worker(client, logs, clock, FakeInspector(logs))
    worker.consumer.rebalance(assign=[0])
    worker.drain(logs)

    del logs[0][40:]  # an unclean leader election kept only 40 messages...
    worker.consumer.positions[0] = 0  # ...and the consumer's position was reset
    with caplog.at_level(logging.WARNING):
        idle(worker, 1.0)
    assert "60 offsets counted as a gap, reading on from 40" in caplog.text
    assert worker.shell.batch.owned.phase(0) is Phase.CONSUMING
    logs[0].extend(stream.logs[0][:20])  # new messages at offsets 40..59
    worker.drain(logs)
    assert window_counts(client) == (stream.valid + 18, len(stream.invalid) + 2)
