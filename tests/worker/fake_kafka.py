"""A broker-less Kafka for the worker's unit tests: a consumer over in-memory partition logs that
serves rebalance callbacks from consume() as librdkafka does, a producer whose broker can be
away, a Redis writer that can fail for a while, and a clock the test moves."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis
from confluent_kafka import OFFSET_INVALID, KafkaError, KafkaException, TopicPartition

from loginmetrics.window import ApplyOutcome, PartitionAdvance, WindowIncrements, WindowWriter

MESSAGE_TIMEOUT_SECONDS = 30.0  # the DLQ producer's message.timeout.ms
RUN = 15  # consume() returns a partition's messages in runs of up to this many


class FakeClock:
    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass(frozen=True)
class FakeMessage:
    """The part of confluent_kafka.Message the worker reads."""

    topic_name: str
    partition_number: int
    offset_number: int
    payload: bytes | None

    def error(self) -> Any:
        return None

    def partition(self) -> int:
        return self.partition_number

    def offset(self) -> int:
        return self.offset_number

    def value(self) -> bytes | None:
        return self.payload

    def timestamp(self) -> tuple[int, int]:
        return (1, 1_736_653_976_000 + self.offset_number)


@dataclass
class Rebalance:
    revoke: list[int] = field(default_factory=list)
    assign: list[int] = field(default_factory=list)


class FakeConsumer:
    """One member of a group over ``logs`` (partition -> message values, offset = index)."""

    def __init__(self, topic: str, logs: dict[int, list[bytes | None]], clock: FakeClock) -> None:
        self.topic = topic
        self.logs = logs
        self.clock = clock
        self.positions: dict[int, int] = {}  # assigned partition -> next offset to deliver
        self.paused: set[int] = set()
        self.commits: dict[int, int] = {}
        self.rebalances: list[Rebalance] = []
        self.seek_errors: list[KafkaException] = []
        self.seeks: list[tuple[int, int]] = []
        # Deliver once from paused partitions too: what librdkafka had fetched before the pause.
        self.leak_once = False
        self.injected: list[Any] = []  # delivered by the next consume() whatever is paused
        self.consume_calls = 0
        self.consumes_while_paused = 0
        self.closed = False
        self.unsubscribed = False
        self._in_callback = False
        self._callbacks: dict[str, Callable[[Any, list[TopicPartition]], None]] = {}

    # -- the group ---------------------------------------------------------------------------

    def subscribe(self, topics: list[str], **callbacks: Any) -> None:
        assert topics == [self.topic]
        self._callbacks = callbacks

    def rebalance(self, revoke: Iterable[int] = (), assign: Iterable[int] = ()) -> None:
        """Served by the next consume(), like librdkafka's rebalance events."""
        self.rebalances.append(Rebalance(list(revoke), list(assign)))

    def _serve_rebalances(self) -> None:
        while self.rebalances:
            event = self.rebalances.pop(0)
            self._in_callback = True
            try:
                if event.revoke:
                    revoked = [TopicPartition(self.topic, p) for p in event.revoke]
                    self._callbacks["on_revoke"](self, revoked)
                    for p in event.revoke:
                        self.positions.pop(p, None)
                        self.paused.discard(p)
                if event.assign:
                    assigned = [TopicPartition(self.topic, p) for p in event.assign]
                    self._callbacks["on_assign"](self, assigned)
            finally:
                self._in_callback = False

    def incremental_assign(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            # No stored offset: the group's commit, else the earliest (auto.offset.reset).
            start = tp.offset if tp.offset >= 0 else self.commits.get(tp.partition, 0)
            self.positions[tp.partition] = start

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition(self.topic, p) for p in sorted(self.positions)]

    # -- consuming ---------------------------------------------------------------------------

    def consume(self, num_messages: int, timeout: float) -> list[FakeMessage]:
        assert not self._in_callback, "consume() called from inside a rebalance callback"
        self.consume_calls += 1
        self._serve_rebalances()
        if self.positions and set(self.positions) <= self.paused:
            self.consumes_while_paused += 1
        leak, self.leak_once = self.leak_once, False
        batch: list[Any] = self.injected
        self.injected = []
        taking = True
        while taking and len(batch) < num_messages:
            taking = False  # runs of up to RUN messages per partition, in turn
            for partition in sorted(self.positions):
                if partition in self.paused and not leak:
                    continue
                log, start = self.logs[partition], self.positions[partition]
                taken = log[start : start + min(RUN, num_messages - len(batch))]
                batch.extend(
                    FakeMessage(self.topic, partition, start + i, value)
                    for i, value in enumerate(taken)
                )
                self.positions[partition] = start + len(taken)
                taking = taking or bool(taken)
        if not batch:
            self.clock.advance(timeout)  # nothing to deliver: consume() waits its timeout
        return batch

    def get_watermark_offsets(
        self, partition: TopicPartition, cached: bool = False
    ) -> tuple[int, int]:
        """Where the partition's log starts and ends (a fetch would have told)."""
        return 0, len(self.logs.get(partition.partition, []))

    def pause(self, partitions: list[TopicPartition]) -> None:
        self.paused |= {tp.partition for tp in partitions}

    def resume(self, partitions: list[TopicPartition]) -> None:
        self.paused -= {tp.partition for tp in partitions}

    def seek(self, partition: TopicPartition) -> None:
        if self.seek_errors:
            raise self.seek_errors.pop(0)
        if partition.partition not in self.positions:
            raise KafkaException(KafkaError(KafkaError._UNKNOWN_PARTITION))
        # OFFSET_BEGINNING (a negative, logical offset): the log's first message.
        self.positions[partition.partition] = max(partition.offset, 0)
        self.seeks.append((partition.partition, partition.offset))

    def committed(self, partitions: list[TopicPartition], timeout: float) -> list[TopicPartition]:
        return [
            TopicPartition(self.topic, tp.partition, self.commits.get(tp.partition, OFFSET_INVALID))
            for tp in partitions
        ]

    def commit(self, offsets: list[TopicPartition], asynchronous: bool) -> None:
        for tp in offsets:
            self.commits[tp.partition] = tp.offset

    def unsubscribe(self) -> None:
        self.unsubscribed = True

    def close(self) -> None:
        self.closed = True


@dataclass
class _Queued:
    value: bytes
    key: bytes
    on_delivery: Callable[[Any, Any], None]
    produced_at: float


class FakeInspector:
    """What the broker says of the topic: an id the test changes to recreate it, and where
    each partition of ``logs`` ends."""

    def __init__(self, logs: dict[int, list[bytes | None]], topic_id: str = "topic-1") -> None:
        self.logs = logs
        self.id = topic_id

    def topic_id(self) -> str | None:
        return self.id

    def high_watermarks(self, partitions: Iterable[int]) -> dict[int, int]:
        return {p: len(self.logs[p]) for p in partitions}


class FakeProducer:
    """A DLQ producer; while ``up`` is False nothing is delivered, and a letter waiting longer
    than the message timeout is reported failed (as librdkafka does)."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.up = True
        self.delivered: list[bytes] = []
        self.produced = 0
        self.on_flush: Callable[[], None] | None = None
        self._queue: list[_Queued] = []

    def produce(
        self, topic: str, value: bytes, *, key: bytes, on_delivery: Callable[[Any, Any], None]
    ) -> None:
        self.produced += 1
        self._queue.append(_Queued(value, key, on_delivery, self.clock()))

    def poll(self, timeout: float) -> int:
        return 0

    def flush(self, timeout: float) -> int:
        if self.on_flush is not None:
            self.on_flush()
        if self.up:
            for queued in self._queue:
                self.delivered.append(queued.value)
                queued.on_delivery(None, None)
            self._queue.clear()
            return 0
        self.clock.advance(timeout)
        now = self.clock()
        expired = [q for q in self._queue if now - q.produced_at >= MESSAGE_TIMEOUT_SECONDS]
        for queued in expired:
            self._queue.remove(queued)
            queued.on_delivery(KafkaError(KafkaError._MSG_TIMED_OUT), None)
        return len(self._queue)


class FlakyWriter(WindowWriter):
    """The real writer (apply_batch.lua on fakeredis) that raises ``error`` until ``until``."""

    def __init__(self, client: redis.Redis, clock: FakeClock, *args: Any) -> None:
        super().__init__(client, *args)
        self.clock = clock
        self.error: redis.RedisError | None = None
        self.until = 0.0
        self.reads_fail = True
        self.apply_calls = 0
        self.failed_calls = 0

    def fail_for(self, seconds: float, error: redis.RedisError, *, reads: bool = True) -> None:
        """Fail for ``seconds``; with ``reads`` False only the apply fails (OOM, READONLY)."""
        self.error, self.until, self.reads_fail = error, self.clock() + seconds, reads

    def _check(self, read: bool = False) -> None:
        if read and not self.reads_fail:
            return
        if self.error is not None and self.clock() < self.until:
            self.failed_calls += 1
            raise self.error

    def applied_offsets(self, partitions: Iterable[int]) -> dict[int, int | None]:
        self._check(read=True)
        return super().applied_offsets(partitions)

    def apply_batch(
        self, advances: Sequence[PartitionAdvance], increments: WindowIncrements
    ) -> ApplyOutcome:
        self._check()
        self.apply_calls += 1
        return super().apply_batch(advances, increments)

    def apply_event_batch(
        self,
        advances: Sequence[PartitionAdvance],
        buckets: Mapping[int, WindowIncrements],
        watermarks: Mapping[int, float],
    ) -> ApplyOutcome:
        self._check()
        self.apply_calls += 1
        return super().apply_event_batch(advances, buckets, watermarks)

    def watermarks(self, partitions: Iterable[int]) -> dict[int, float | None]:
        self._check(read=True)
        return super().watermarks(partitions)

    def mark_caught_up(self, caught_up: Mapping[int, bool]) -> tuple[float, int | None]:
        self._check(read=True)
        return super().mark_caught_up(caught_up)
