"""The worker's batch loop without a broker: a fake consumer and producer, the real apply script
on fakeredis behind a writer that fails on demand, and a clock the test moves. Every test ends
by checking the window against the stream's own ground truth."""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from collections import Counter

import pytest
import redis
from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException
from redis.exceptions import NoPermissionError, OutOfMemoryError

from loginmetrics.runtime.redis_errors import FatalRedisError, exit_when_fatal
from loginmetrics.runtime.signals import EXIT_FATAL
from loginmetrics.worker.batch_step import AUDIT_SECONDS
from loginmetrics.worker.consumer_errors import FatalConsumerError
from loginmetrics.worker.consumer_shell import ConsumerShell
from tests.worker.fake_kafka import FakeClock, FakeConsumer, FakeProducer, FlakyWriter
from tests.worker.loop_support import (
    FATAL_FAILURES,
    LAYOUT,
    SETTINGS,
    TOPIC,
    FatalRecord,
    Logs,
    Worker,
    assert_exact,
    idle,
    make_stream,
    roll_back,
    window_counts,
    window_from,
)


def test_a_stream_is_applied_once_with_its_dead_letters(
    client: redis.Redis, clock: FakeClock
) -> None:
    stream = make_stream()
    worker = Worker(client, stream.logs, clock)
    worker.consumer.rebalance(assign=[0, 1])
    worker.drain(stream.logs)

    assert_exact(client, stream)
    assert worker.letters() == Counter(dict.fromkeys(stream.invalid, 1))
    assert worker.consumer.commits == {p: len(log) for p, log in stream.logs.items()}
    assert worker.shell.stats.messages == stream.total


def test_redis_down_pauses_keeps_polling_and_resumes_by_itself(
    client: redis.Redis, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    stream = make_stream()
    worker = Worker(client, stream.logs, clock)
    worker.consumer.rebalance(assign=[0, 1])
    worker.run_until(lambda: worker.shell.stats.messages >= 120)
    committed = dict(worker.consumer.commits)
    outage_end = clock() + 6.0
    worker.writer.fail_for(6.0, redis.ConnectionError("Connection refused"))

    worker.run_until(lambda: worker.writer.failed_calls > 0)
    assert worker.consumer.paused == {0, 1}
    worker.consumer.leak_once = True  # messages fetched before the pause arrive anyway
    polls = worker.consumer.consume_calls
    worker.run_until(lambda: clock() >= outage_end)
    # Polled at least every 0.5 s while paused: the group keeps this member.
    assert worker.consumer.consume_calls - polls >= 6.0 / 0.5 - 1
    assert worker.consumer.consumes_while_paused >= 6.0 / 0.5 - 1
    assert worker.consumer.paused == {0, 1}
    assert worker.consumer.commits == committed, "nothing committed while Redis was down"
    assert worker.writer.failed_calls >= 4, "retried with backoff"

    worker.drain(stream.logs)
    assert worker.consumer.paused == set()
    assert_exact(client, stream)
    assert worker.letters() == Counter(dict.fromkeys(stream.invalid, 1))
    assert "consumption paused" in caplog.text
    assert "Redis is back after" in caplog.text


def test_dead_letters_are_not_sent_again_when_only_the_apply_is_retried(
    client: redis.Redis, clock: FakeClock
) -> None:
    stream = make_stream(partitions=1, count=40)  # one batch, four unusable messages
    worker = Worker(client, stream.logs, clock)
    worker.writer.fail_for(3.0, OutOfMemoryError("command not allowed"), reads=False)
    worker.consumer.rebalance(assign=[0])
    worker.drain(stream.logs)

    assert worker.writer.failed_calls >= 3
    assert worker.producer.produced == len(stream.invalid)
    assert worker.letters() == Counter(dict.fromkeys(stream.invalid, 1))
    assert_exact(client, stream)


def test_undelivered_dead_letters_hold_the_apply_and_only_they_are_sent_again(
    client: redis.Redis, clock: FakeClock
) -> None:
    stream = make_stream(partitions=1, count=80)
    worker = Worker(client, stream.logs, clock)
    worker.consumer.rebalance(assign=[0])
    worker.run_until(lambda: worker.shell.stats.batches == 1)
    worker.producer.up = False
    worker.run_until(lambda: worker.shell.batch.waiting)  # the broker timed the letters out
    assert worker.consumer.paused == {0}
    assert worker.writer.apply_calls == 1, "no apply before the dead letters are confirmed"
    worker.producer.up = True
    worker.drain(stream.logs)

    assert worker.producer.produced == len(stream.invalid) + 4  # the second batch's four again
    assert worker.letters() == Counter(dict.fromkeys(stream.invalid, 1))
    assert_exact(client, stream)


def test_stop_during_a_dead_letter_flush_applies_and_commits_nothing(
    client: redis.Redis, clock: FakeClock
) -> None:
    stream = make_stream(partitions=1, count=40)
    worker = Worker(client, stream.logs, clock)
    worker.producer.up = False
    flushes = 0

    def stop_on_third_flush() -> None:
        nonlocal flushes
        flushes += 1
        if flushes == 3:
            worker.stop.set()  # SIGTERM while the broker is away

    worker.producer.on_flush = stop_on_third_flush
    worker.consumer.rebalance(assign=[0])
    worker.shell.run()

    assert worker.consumer.closed
    assert worker.writer.apply_calls == 0
    assert window_counts(client) == (0, 0)
    assert worker.consumer.commits == {}


def test_a_rebalance_during_an_apply_retry_keeps_the_batch_exact(
    client: redis.Redis, clock: FakeClock
) -> None:
    stream = make_stream()
    worker = Worker(client, stream.logs, clock)
    worker.consumer.rebalance(assign=[0, 1])
    worker.run_until(lambda: worker.shell.stats.messages >= 80)
    # OOM refuses writes only: the reassignment can read the applied offsets meanwhile.
    worker.writer.fail_for(4.0, OutOfMemoryError("command not allowed"), reads=False)
    worker.run_until(lambda: worker.writer.failed_calls > 0)
    worker.consumer.rebalance(revoke=[1], assign=[1])  # partition 1 leaves and comes back
    worker.run_until(lambda: worker.writer.failed_calls > 2)
    assert worker.consumer.paused == {0, 1}, "the returning partition is paused too"

    worker.drain(stream.logs)
    assert_exact(client, stream)
    assert worker.shell.stats.refused_batches == 0
    assert worker.consumer.paused == set()


def test_a_partition_taken_over_during_the_retry_refuses_the_batch_and_rewinds_the_rest(
    client: redis.Redis, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    stream = make_stream()
    ours = Worker(client, stream.logs, clock)
    ours.consumer.rebalance(assign=[0, 1])
    ours.run_until(lambda: ours.shell.stats.messages >= 80)
    ours.writer.fail_for(3.0, redis.ConnectionError("Connection reset by peer"))
    ours.run_until(lambda: ours.writer.failed_calls > 0)
    pending_from = ours.consumer.commits[0]  # the pending batch starts here on partition 0
    ours.consumer.rebalance(revoke=[1])
    ours.run_until(lambda: 1 not in ours.consumer.positions)

    # The new owner of partition 1 applies it all while our batch waits for Redis.
    other = Worker(client, stream.logs, clock)
    other.consumer.rebalance(assign=[1])
    other.drain(stream.logs)

    ours.drain(stream.logs)
    assert ours.shell.stats.refused_batches == 1
    assert (0, pending_from) in ours.consumer.seeks, "rewound to where the window is"
    assert "window refused batch: partition 1" in caplog.text
    assert_exact(client, stream)


def test_a_refused_batch_rewinds_to_the_stored_offset(
    client: redis.Redis, clock: FakeClock
) -> None:
    stream = make_stream(partitions=1, count=300)
    zombie = Worker(client, stream.logs, clock)
    zombie.consumer.rebalance(assign=[0])
    zombie.run_until(lambda: 0 in zombie.consumer.positions)  # read offset None, nothing yet
    owner = Worker(client, stream.logs, clock)
    owner.consumer.rebalance(assign=[0])
    owner.run_until(lambda: owner.shell.stats.messages >= 120)

    # The zombie was placed while the window had nothing; the owner applied from the start
    # since. The zombie's first batch still expects nothing.
    owned_up_to = owner.shell.batch.applied[0]
    assert owned_up_to is not None
    zombie.shell.step()
    assert zombie.shell.stats.refused_batches == 1
    assert zombie.shell.batch.applied == {0: owned_up_to}
    assert zombie.consumer.seeks[-1] == (0, owned_up_to + 1), "rewound to where the window is"

    zombie.drain(stream.logs)  # the owner has gone: the zombie goes on from the window
    assert_exact(client, stream)
    assert zombie.shell.stats.messages + owner.shell.stats.messages == stream.total


def test_a_rewind_the_consumer_refuses_is_retried_while_the_partition_is_ours(
    client: redis.Redis, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    stream = make_stream(partitions=1, count=300)
    zombie = Worker(client, stream.logs, clock)
    zombie.consumer.rebalance(assign=[0])
    zombie.run_until(lambda: 0 in zombie.consumer.positions)
    owner = Worker(client, stream.logs, clock)
    owner.consumer.rebalance(assign=[0])
    owner.run_until(lambda: owner.shell.stats.messages >= 120)
    target = owner.shell.batch.applied[0] + 1  # type: ignore[operator]

    zombie.consumer.seek_errors.append(KafkaException(KafkaError(KafkaError._STATE)))
    with caplog.at_level(logging.WARNING):
        zombie.shell.step()
    assert f"could not rewind partition 0 to offset {target}" in caplog.text
    assert zombie.consumer.paused == {0}, "nothing is consumed from the wrong position"
    assert zombie.shell.batch.waiting

    zombie.drain(stream.logs)
    assert (0, target) in zombie.consumer.seeks
    assert_exact(client, stream)


def test_assignment_returns_at_once_during_a_redis_outage_and_places_after_it(
    client: redis.Redis, clock: FakeClock
) -> None:
    stream = make_stream()
    worker = Worker(client, stream.logs, clock)
    started = clock()
    worker.writer.fail_for(3.0, redis.ConnectionError("Connection refused"))
    worker.consumer.rebalance(assign=[0, 1])
    worker.shell.step()  # FakeConsumer fails any consume() from inside the callback

    assert clock() - started < 3.0, "the rebalance callback made no Redis call"
    assert set(worker.consumer.positions) == {0, 1}
    assert worker.consumer.paused == {0, 1}, "not consumed before they are placed"
    polls = worker.consumer.consume_calls
    worker.run_until(lambda: clock() - started >= 3.0)
    assert worker.consumer.consume_calls - polls >= 3.0 / 0.5 - 1, "polled: still a member"
    assert window_counts(client) == (0, 0)
    worker.drain(stream.logs)
    assert worker.consumer.paused == set()
    assert_exact(client, stream)


def test_a_redis_error_that_will_not_heal_exits_fatally_with_one_error_line(
    client: redis.Redis, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    stream = make_stream(partitions=1, count=40)
    worker = Worker(client, stream.logs, clock)
    worker.consumer.rebalance(assign=[0])
    worker.run_until(lambda: worker.shell.stats.batches == 1)
    worker.writer.fail_for(1e9, NoPermissionError("user has no permissions", status_code="NOPERM"))
    stream.logs[0].extend(stream.logs[0][:5])

    with pytest.raises(SystemExit) as exit_info, exit_when_fatal():
        worker.shell.run()
    assert exit_info.value.code == EXIT_FATAL
    assert isinstance(exit_info.value.__context__, FatalRedisError)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "NOPERM" in errors[0].getMessage()
    assert "ACL SETUSER" in errors[0].getMessage()
    assert worker.consumer.closed
    assert worker.consumer.commits == {0: 40}, "the five later messages are not committed"
    assert window_counts(client) == (stream.valid, len(stream.invalid))


def test_a_window_rolled_back_by_a_failover_is_refilled_from_kafka(
    client: redis.Redis, clock: FakeClock
) -> None:
    stream = make_stream()
    worker = Worker(client, stream.logs, clock)
    worker.consumer.rebalance(assign=[0, 1])
    worker.run_until(lambda: worker.shell.stats.messages >= 80)
    # A replica promoted after the primary died: it lacks the primary's last writes.
    snapshot = {key: client.dump(key) for key in client.scan_iter()}
    worker.run_until(lambda: worker.shell.stats.messages >= 200)
    roll_back(client, snapshot)
    # librdkafka refuses the first seek; the partition is still ours: it is tried again.
    worker.consumer.seek_errors.append(KafkaException(KafkaError(KafkaError._STATE)))

    worker.drain(stream.logs)
    assert worker.shell.stats.refused_batches == 1
    assert_exact(client, stream)
    # Read again, not sent again: this process had them confirmed.
    assert worker.letters() == Counter(dict.fromkeys(stream.invalid, 1))


def test_writes_lost_after_the_last_batch_are_found_and_read_again(
    client: redis.Redis, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    stream = make_stream()
    worker = Worker(client, stream.logs, clock)
    worker.consumer.rebalance(assign=[0, 1])
    worker.run_until(lambda: worker.shell.stats.messages >= 80)
    snapshot = {key: client.dump(key) for key in client.scan_iter()}
    worker.drain(stream.logs)
    roll_back(client, snapshot)  # the stream's last batches were lost with the old primary
    assert window_counts(client)[0] < stream.valid

    with caplog.at_level(logging.WARNING):
        idle(worker, AUDIT_SECONDS + 1)  # no new message will come to refuse a batch
        worker.drain(stream.logs)
    assert "Redis lost its last writes" in caplog.text
    assert worker.shell.stats.refused_batches == 0
    assert_exact(client, stream)
    assert worker.letters() == Counter(dict.fromkeys(stream.invalid, 1)), "not sent again"


def test_a_partition_the_window_lost_entirely_is_not_replayed_into_the_current_window(
    client: redis.Redis, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    stream = make_stream(partitions=1, count=100)
    worker = Worker(client, stream.logs, clock)
    worker.consumer.rebalance(assign=[0])
    worker.drain(stream.logs)
    client.flushall()  # a replica that had none of it

    with caplog.at_level(logging.ERROR):
        idle(worker, AUDIT_SECONDS + 1)
    assert "the window holds no offset of it, though this worker applied up to 99" in caplog.text
    assert (0, 100) in worker.consumer.seeks, "on from Kafka's committed offset"
    assert (0, OFFSET_BEGINNING) not in worker.consumer.seeks[1:], "the retention not replayed"
    stream.logs[0].extend(make_stream(partitions=1, count=30).logs[0])
    worker.drain(stream.logs)
    assert window_counts(client) == (27, 3), "exactly what came after"
    assert worker.shell.batch.applied == {0: 129}


def test_a_batch_refused_by_a_window_that_lost_the_partition_goes_on_from_the_batch(
    client: redis.Redis, clock: FakeClock
) -> None:
    stream = make_stream(partitions=1, count=100)
    worker = Worker(client, stream.logs, clock)
    worker.consumer.rebalance(assign=[0])
    worker.run_until(lambda: worker.shell.stats.messages >= 60)
    applied = worker.shell.batch.applied[0]
    assert applied is not None
    client.flushall()  # promoted: a replica that had none of it

    worker.drain(stream.logs)  # the next batch is refused before any offset check is due
    assert worker.shell.stats.refused_batches == 1
    assert worker.consumer.seeks[-1] == (0, applied + 1)
    assert window_counts(client) == window_from(stream, applied + 1)


def test_the_audit_leaves_a_partition_another_worker_moved_on_to_the_compare_and_set(
    client: redis.Redis, clock: FakeClock
) -> None:
    stream = make_stream(partitions=1, count=300)
    zombie = Worker(client, stream.logs, clock)
    zombie.consumer.rebalance(assign=[0])
    zombie.run_until(lambda: zombie.shell.stats.messages >= 40)
    zombie.consumer.pause(zombie.consumer.assignment())  # stalled: consumes nothing more
    zombie.shell.step()  # lands a batch still being applied
    stalled_at = dict(zombie.shell.batch.applied)
    owner = Worker(client, stream.logs, clock)
    owner.consumer.rebalance(assign=[0])
    owner.drain(stream.logs)
    seeks = list(zombie.consumer.seeks)

    idle(zombie, AUDIT_SECONDS + 1)
    assert zombie.consumer.seeks == seeks, "ahead of us is not lost: not ours to rewind"
    assert zombie.shell.batch.applied == stalled_at
    assert_exact(client, stream)


def test_a_fatal_refusal_while_placing_partitions_is_raised_from_the_loop(
    client: redis.Redis, clock: FakeClock
) -> None:
    stream = make_stream()
    worker = Worker(client, stream.logs, clock)
    worker.writer.fail_for(1e9, NoPermissionError("no permissions", status_code="NOPERM"))
    worker.consumer.rebalance(assign=[0, 1])

    with pytest.raises(FatalRedisError, match="read applied offsets"):
        worker.shell.step()
    assert worker.consumer.paused == {0, 1}, "nothing consumed"
    assert window_counts(client) == (0, 0)


def test_the_field_limit_of_the_settings_reaches_the_fold(
    client: redis.Redis, clock: FakeClock
) -> None:
    login = {"app_version": "1", "ip": "1.1.1.1", "locale": "TX", "device_type": "iOS"}
    short = json.dumps({**login, "user_id": "u" * 8, "timestamp": 1}).encode()
    long = json.dumps({**login, "user_id": "u" * 9, "timestamp": 1}).encode()
    logs: Logs = {0: [short, long]}
    consumer, producer = FakeConsumer(TOPIC, logs, clock), FakeProducer(clock)
    settings = dataclasses.replace(SETTINGS, max_field_bytes=8)
    shell = ConsumerShell(
        settings, consumer, producer, FlakyWriter(client, clock, LAYOUT, TOPIC),
        threading.Event(), clock=clock,
    )  # fmt: skip
    shell.subscribe()
    consumer.rebalance(assign=[0])
    for _ in range(50):
        shell.step()
    assert window_counts(client) == (1, 1)
    (letter,) = producer.delivered
    assert json.loads(letter)["error_code"] == "value_too_long"


def test_a_fatal_consumer_error_ends_the_process_for_a_fresh_one(
    client: redis.Redis, clock: FakeClock
) -> None:
    stream = make_stream(partitions=1, count=20)
    worker = Worker(client, stream.logs, clock)
    worker.consumer.rebalance(assign=[0])
    worker.drain(stream.logs)
    for failure in FATAL_FAILURES:
        with pytest.raises(FatalConsumerError, match="fenced"):
            worker.shell.batch.step([FatalRecord(failure)])
    assert_exact(client, stream)  # what was applied stays applied, exactly
