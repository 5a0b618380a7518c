"""Every batch-loop scenario of test_worker_batch_loop again with ``overlap``: each batch applied
on its own thread while the next one is consumed and folded. Same fakes, same ground truth."""

from __future__ import annotations

import inspect
import logging
from collections import Counter
from collections.abc import Callable

import pytest
import redis
from confluent_kafka import KafkaError, KafkaException

from loginmetrics.runtime.backoff import Backoff
from loginmetrics.worker.consumer_shell import ConsumerShell
from tests.worker import test_worker_batch_loop as loop
from tests.worker.fake_kafka import FakeClock
from tests.worker.test_worker_batch_loop import client, clock  # noqa: F401 - its fixtures

# These assert what a given number of step() calls has done; with overlap a batch's outcome is
# taken one step later (and the next batch's dead letters are sent one step earlier), so each
# has a counterpart below that waits for the outcome instead of counting steps.
COUNTS_STEPS = {
    "test_a_refused_batch_rewinds_to_the_stored_offset",
    "test_a_rewind_the_consumer_refuses_is_retried_while_the_partition_is_ours",
    "test_undelivered_dead_letters_hold_the_apply_and_only_they_are_sent_again",
}
SCENARIOS = {
    name: test
    for name, test in vars(loop).items()
    if name.startswith("test_") and inspect.isfunction(test) and name not in COUNTS_STEPS
}


class OverlappingWorker(loop.Worker):
    """``loop.Worker`` whose shell applies each batch on a thread of its own."""

    def __init__(self, client: redis.Redis, logs: loop.Logs, clock: FakeClock) -> None:  # noqa: F811
        super().__init__(client, logs, clock)
        self.shell = ConsumerShell(
            loop.SETTINGS,
            self.consumer,
            self.producer,
            self.writer,
            self.stop,
            clock=clock,
            backoff=Backoff(jitter=lambda _low, _high: 1.0),
            sleep=clock.advance,
            overlap=True,
        )
        self.shell.subscribe()  # in place of the first shell


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_the_scenario_holds_with_overlapping_applies(
    name: str, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    monkeypatch.setattr(loop, "Worker", OverlappingWorker)
    test: Callable[..., None] = SCENARIOS[name]
    wanted = inspect.signature(test).parameters
    test(**{param: request.getfixturevalue(param) for param in wanted})


def owner_stops(client: redis.Redis, owner: OverlappingWorker) -> int:  # noqa: F811
    """The owner lands its batch in flight and stops; the offset it left in the window."""
    owner.shell.batch.settle()
    return int(client.hget(loop.LAYOUT.applied_offsets_key(loop.TOPIC), "0") or -1)


def test_a_refused_batch_rewinds_to_the_stored_offset(
    client: redis.Redis,  # noqa: F811 - the fixture
    clock: FakeClock,  # noqa: F811
) -> None:
    stream = loop.make_stream(partitions=1, count=300)
    zombie = OverlappingWorker(client, stream.logs, clock)
    zombie.consumer.rebalance(assign=[0])
    zombie.run_until(lambda: 0 in zombie.consumer.positions)  # 0-39 sent with nothing stored
    owner = OverlappingWorker(client, stream.logs, clock)
    owner.consumer.rebalance(assign=[0])
    owner.run_until(lambda: owner.shell.stats.messages >= 120)
    stored = owner_stops(client, owner)

    # The owner went on from 39; the zombie's next batch still expects 39.
    zombie.run_until(lambda: zombie.shell.stats.refused_batches == 1)
    assert (0, stored + 1) in zombie.consumer.seeks, "rewound to where the window is"

    zombie.drain(stream.logs)  # the owner has gone: the zombie goes on from the window
    loop.assert_exact(client, stream)
    assert zombie.shell.stats.messages + owner.shell.stats.messages == stream.total


def test_a_rewind_the_consumer_refuses_is_retried_while_the_partition_is_ours(
    client: redis.Redis,  # noqa: F811
    clock: FakeClock,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    stream = loop.make_stream(partitions=1, count=300)
    zombie = OverlappingWorker(client, stream.logs, clock)
    zombie.consumer.rebalance(assign=[0])
    zombie.run_until(lambda: 0 in zombie.consumer.positions)
    owner = OverlappingWorker(client, stream.logs, clock)
    owner.consumer.rebalance(assign=[0])
    owner.run_until(lambda: owner.shell.stats.messages >= 120)
    stored = owner_stops(client, owner)

    zombie.consumer.seek_errors.append(KafkaException(KafkaError(KafkaError._STATE)))
    refusal = f"could not rewind partition 0 to offset {stored + 1}"
    with caplog.at_level(logging.WARNING):
        zombie.run_until(lambda: refusal in caplog.text)
    assert zombie.consumer.paused == {0}, "nothing is consumed from the wrong position"
    assert zombie.shell.batch.waiting

    zombie.drain(stream.logs)
    assert (0, stored + 1) in zombie.consumer.seeks
    loop.assert_exact(client, stream)


def test_undelivered_dead_letters_hold_the_apply_and_only_they_are_sent_again(
    client: redis.Redis,  # noqa: F811
    clock: FakeClock,  # noqa: F811
) -> None:
    stream = loop.make_stream(partitions=1, count=80)
    worker = OverlappingWorker(client, stream.logs, clock)
    worker.consumer.rebalance(assign=[0])
    worker.producer.up = False
    worker.run_until(lambda: worker.shell.batch.waiting)  # the broker timed the letters out
    assert worker.consumer.paused == {0}
    assert worker.writer.apply_calls == 0, "no apply before the dead letters are confirmed"
    worker.producer.up = True
    worker.drain(stream.logs)

    assert worker.producer.produced == len(stream.invalid) + 4  # the first batch's four again
    assert worker.letters() == Counter(dict.fromkeys(stream.invalid, 1))
    loop.assert_exact(client, stream)


def test_closing_lands_the_batch_in_flight_and_commits_it(
    client: redis.Redis,  # noqa: F811
    clock: FakeClock,  # noqa: F811
) -> None:
    stream = loop.make_stream(partitions=2, count=80)
    worker = OverlappingWorker(client, stream.logs, clock)
    worker.consumer.rebalance(assign=[0, 1])
    worker.run_until(lambda: worker.shell.stats.batches == 1)  # the second batch in flight
    assert worker.shell.stats.messages == 40
    worker.shell.close()

    assert worker.consumer.unsubscribed
    assert worker.consumer.closed
    assert worker.shell.stats.messages == 80
    assert worker.consumer.committed == {p: len(log) for p, log in stream.logs.items()}
    loop.assert_exact(client, stream)
