"""The batch loop as a stateful property: two workers over fake Kafka and one fakeredis, with
faults drawn by hypothesis (Redis failing or losing its last writes, partitions moving, a fatal
consumer event, the dead-letter topic away, the topic recreated, time passing). After every step
a partition is paused only while its worker has something pending; once every fault is healed
the window equals the ground truth exactly and every invalid message has its dead letter."""

from __future__ import annotations

import dataclasses
from collections import Counter

import fakeredis
import redis
from hypothesis import Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from redis.exceptions import OutOfMemoryError

from loginmetrics.window.layout import TimeBasis
from loginmetrics.worker.batch_step import LoopState
from loginmetrics.worker.consumer_errors import FatalConsumerError
from tests.worker.fake_kafka import FakeClock, FakeInspector
from tests.worker.loop_support import (
    FATAL_FAILURES,
    LAYOUT,
    SETTINGS,
    TOPIC,
    FatalRecord,
    Logs,
    Stream,
    Worker,
    make_stream,
    window_counts,
)

PARTITIONS = 3
# A failing run prints its steps and its seed (replay: pytest --hypothesis-seed=N). Shrinking a
# run of two workers takes minutes, past what the suite can spend: it is left out.
NO_SHRINKING = [Phase.explicit, Phase.reuse, Phase.generate]
MAX_BACKOFF_SECONDS = 5.0  # runtime.backoff.Backoff's cap
REDIS_FAULTS = [
    redis.ConnectionError("Connection refused"),
    OutOfMemoryError("command not allowed when used memory > 'maxmemory'"),
]


class BatchLoopMachine(RuleBasedStateMachine):
    settings = SETTINGS

    def __init__(self) -> None:
        super().__init__()
        self.client = fakeredis.FakeRedis()
        self.clock = FakeClock()
        self.incarnation = 1
        self.stream = make_stream(PARTITIONS, 240)
        self.logs: Logs = {p: list(log) for p, log in self.stream.logs.items()}
        self.inspector = FakeInspector(self.logs, "topic-1")
        self.valid, self.invalid = self.stream.valid, Counter(self.stream.invalid)
        self.owners: dict[int, int] = {p: p % 2 for p in range(PARTITIONS)}  # partition -> worker
        self.workers = [self._start(index) for index in range(2)]
        self.letters: Counter[tuple[int, int]] = Counter()  # of workers that were replaced
        self.snapshots: list[dict[bytes, bytes | None]] = []

    def _start(self, index: int) -> Worker:
        worker = Worker(self.client, self.logs, self.clock, self.inspector, self.settings)
        worker.consumer.rebalance(assign=[p for p, o in self.owners.items() if o == index])
        return worker

    def _step_all(self, steps: int) -> None:
        for _ in range(steps):
            for worker in self.workers:
                worker.shell.step()
            self._check_pausing()

    # -- rules -----------------------------------------------------------------------------

    @rule(worker=st.integers(0, 1), steps=st.integers(1, 6))
    def consume(self, worker: int, steps: int) -> None:
        for _ in range(steps):
            self.workers[worker].shell.step()
            self._check_pausing()

    @rule(seconds=st.floats(0.5, 8.0), fault=st.sampled_from(REDIS_FAULTS))
    def redis_fails_for_a_while(self, seconds: float, fault: redis.RedisError) -> None:
        reads = isinstance(fault, redis.ConnectionError)  # OOM refuses writes only
        for worker in self.workers:
            worker.writer.fail_for(seconds, fault, reads=reads)

    @rule()
    def take_snapshot(self) -> None:
        """What a replica would hold now, once every partition has an offset."""
        stored = self.client.hgetall(LAYOUT.applied_offsets_key(TOPIC))
        incarnation = self.client.get(LAYOUT.topic_id_key(TOPIC))
        if len(stored) == PARTITIONS and incarnation == self.inspector.id.encode():
            self.snapshots.append({key: self.client.dump(key) for key in self.client.scan_iter()})

    @precondition(lambda self: bool(self.snapshots))
    @rule(back=st.integers(0, 3))
    def redis_loses_its_last_writes(self, back: int) -> None:
        snapshot = self.snapshots[max(0, len(self.snapshots) - 1 - back)]
        self.client.flushall()
        for key, value in snapshot.items():
            assert value is not None
            self.client.restore(key, 0, value)

    @rule(partition=st.integers(0, PARTITIONS - 1))
    def partition_moves(self, partition: int) -> None:
        old = self.owners[partition]
        self.owners[partition] = 1 - old
        self.workers[old].consumer.rebalance(revoke=[partition])
        self.workers[1 - old].consumer.rebalance(assign=[partition])

    @rule(worker=st.integers(0, 1), failure=st.sampled_from(FATAL_FAILURES))
    def fatal_consumer_event(self, worker: int, failure: object) -> None:
        self.workers[worker].consumer.injected.append(FatalRecord(failure))  # type: ignore[arg-type]
        try:
            for _ in range(3):
                self.workers[worker].shell.step()
        except FatalConsumerError:
            pass
        else:
            raise AssertionError("a fatal consumer event did not end the worker")
        # The process ends; the supervisor starts a fresh one in its slot.
        self.letters += self.workers[worker].letters()
        self.workers[worker] = self._start(worker)

    @rule(worker=st.integers(0, 1), seconds=st.floats(1.0, 40.0))
    def dead_letter_topic_away(self, worker: int, seconds: float) -> None:
        producer = self.workers[worker].producer
        producer.up = False
        until = self.clock() + seconds
        while self.clock() < until:
            self._step_all(1)
            self.clock.advance(0.5)
        producer.up = True

    @rule(seconds=st.floats(0.1, 6.0))
    def time_passes(self, seconds: float) -> None:
        until = self.clock() + seconds
        while self.clock() < until:
            self._step_all(1)

    @rule(count=st.integers(30, 150))
    def topic_recreated(self, count: int) -> None:
        """Deleted and created again once everything was read, with new messages at the old
        offsets; the consumers find their positions out of range and reset to the start."""
        self._heal_and_drain()
        self.incarnation += 1
        fresh = make_stream(PARTITIONS, count)
        for partition, log in fresh.logs.items():
            self.logs[partition][:] = log
        self.inspector.id = f"topic-{self.incarnation}"
        for worker in self.workers:
            worker.consumer.commits.clear()  # Kafka drops a topic's offsets with it
            for partition in worker.consumer.positions:
                worker.consumer.positions[partition] = 0
        self.stream = fresh
        self.valid += fresh.valid
        self.invalid += Counter(fresh.invalid)
        self.snapshots.clear()  # a replica of the old incarnation is no longer a prefix

    # -- what must hold --------------------------------------------------------------------

    def _check_pausing(self) -> None:
        for worker in self.workers:
            batch = worker.shell.batch
            paused = worker.consumer.paused
            if batch.state is LoopState.WAITING:
                assert paused == set(worker.consumer.positions)
            else:
                assert paused == batch.owned.unsettled(), "paused with nothing pending"

    @invariant()
    def a_waiting_worker_retries_within_the_backoff_cap(self) -> None:
        for worker in self.workers:
            if worker.shell.batch.state is LoopState.WAITING:
                assert worker.shell.batch._attempts.wait() <= MAX_BACKOFF_SECONDS * 1.2

    def _heal_and_drain(self) -> None:
        for worker in self.workers:
            worker.writer.fail_for(0.0, redis.ConnectionError("healed"))
            worker.producer.up = True

        def drained() -> bool:
            stored = self.client.hgetall(LAYOUT.applied_offsets_key(TOPIC))
            ends = {str(p).encode(): str(len(log) - 1).encode() for p, log in self.logs.items()}
            read = {
                p: position for w in self.workers for p, position in w.consumer.positions.items()
            }
            return (
                stored == ends
                and read == {p: len(log) for p, log in self.logs.items()}
                and not any(w.shell.batch.waiting for w in self.workers)
            )

        for _ in range(3_000):
            if drained():
                return
            self._step_all(1)
        raise AssertionError(
            "the workers did not drain after every fault healed: "
            f"window {self.client.hgetall(LAYOUT.applied_offsets_key(TOPIC))}, "
            f"ends { {p: len(log) - 1 for p, log in self.logs.items()} }, "
            + "; ".join(self._describe(w) for w in self.workers)
        )

    def _describe(self, worker: Worker) -> str:
        owned = worker.shell.batch.owned
        phases = {p: (owned.phase(p).value, owned.applied(p)) for p in owned}
        return (
            f"worker {worker.shell.batch.state.value} owns {phases}, consumer at "
            f"{worker.consumer.positions}, paused {worker.consumer.paused}"
        )

    def teardown(self) -> None:
        self._heal_and_drain()
        assert window_counts(self.client) == (self.valid, sum(self.invalid.values()))
        letters = self.letters + sum((w.letters() for w in self.workers), Counter())
        assert not self.invalid - letters, "invalid messages without a dead letter"


BatchLoopMachine.TestCase.settings = settings(
    max_examples=40, stateful_step_count=25, deadline=None, print_blob=True, phases=NO_SHRINKING
)
test_the_batch_loop_under_random_faults = BatchLoopMachine.TestCase


class EventTimeLoopMachine(BatchLoopMachine):
    """The same faults in event time: buckets from the payloads' timestamps, and each
    partition's watermark moved, read again and rewound with its applied offset."""

    # The stream's logins are from 2025: a retention that still holds them.
    settings = dataclasses.replace(
        SETTINGS,
        layout=dataclasses.replace(LAYOUT, time_basis=TimeBasis.EVENT, retention_seconds=10**10),
    )

    def teardown(self) -> None:
        super().teardown()
        # Every partition's watermark went into the window with its offsets.
        marks = self.client.hgetall(self.settings.layout.watermarks_key(TOPIC))
        assert {int(p) for p in marks} == set(self.logs)


EventTimeLoopMachine.TestCase.settings = settings(
    max_examples=25, stateful_step_count=25, deadline=None, print_blob=True, phases=NO_SHRINKING
)
test_the_event_time_batch_loop_under_random_faults = EventTimeLoopMachine.TestCase


def test_the_stream_helper_spreads_partitions_evenly() -> None:
    stream: Stream = make_stream(PARTITIONS, 240)
    assert {len(log) for log in stream.logs.values()} == {80}
