"""The worker's batch loop without a broker, shared by its tests: a planned stream with its
ground truth, one worker's shell over fake Kafka and fakeredis, and readers of the window."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import redis
from confluent_kafka import KafkaError

from loginmetrics.runtime.backoff import Backoff
from loginmetrics.window import WindowLayout
from loginmetrics.worker.consumer_shell import ConsumerShell
from loginmetrics.worker.settings import WorkerSettings
from loginmetrics.worker.topic_inspector import TopicInspector
from tests.support import login_stream
from tests.worker.fake_kafka import FakeClock, FakeConsumer, FakeProducer, FlakyWriter

TOPIC = "user-login"
LAYOUT = WindowLayout(prefix="loop-test")
SETTINGS = WorkerSettings(
    kafka={"bootstrap.servers": "127.0.0.1:9"},
    redis_url="redis://unused",
    layout=LAYOUT,
    input_topic=TOPIC,
    dlq_topic="dlq",
    batch_size=40,
)
Logs = dict[int, list[bytes | None]]


@dataclass
class Stream:
    logs: Logs
    valid: int
    invalid: set[tuple[int, int]]  # (partition, offset) of every unusable message

    @property
    def total(self) -> int:
        return sum(len(log) for log in self.logs.values())


def make_stream(partitions: int = 2, count: int = 400) -> Stream:
    """``count`` logins spread over ``partitions``, every 10th unusable."""
    stream = login_stream(count, users=50, invalid_every=10)
    logs: Logs = {p: [] for p in range(partitions)}
    invalid: set[tuple[int, int]] = set()
    for n, (_key, value) in enumerate(stream.messages):
        log = logs[n % partitions]
        if n % 10 == 9:
            invalid.add((n % partitions, len(log)))
        log.append(value)
    assert len(invalid) == stream.truth.invalid
    return Stream(logs, stream.truth.valid, invalid)


class Worker:
    """One worker's shell over the shared fakeredis, with its own consumer and producer."""

    def __init__(
        self,
        client: redis.Redis,
        logs: Logs,
        clock: FakeClock,
        inspector: TopicInspector | None = None,
        settings: WorkerSettings = SETTINGS,
    ) -> None:
        self.clock = clock
        self.consumer = FakeConsumer(TOPIC, logs, clock)
        self.producer = FakeProducer(clock)
        self.writer = FlakyWriter(client, clock, settings.layout, TOPIC)
        self.stop = threading.Event()
        self.shell = ConsumerShell(
            settings,
            self.consumer,
            self.producer,
            self.writer,
            self.stop,
            clock=clock,
            backoff=Backoff(jitter=lambda _low, _high: 1.0),
            inspector=inspector,
        )
        self.shell.subscribe()

    def run_until(self, done: Callable[[], bool], max_steps: int = 2_000) -> None:
        for _ in range(max_steps):
            if done():
                return
            self.shell.step()
        raise AssertionError(f"not done after {max_steps} steps")

    def drain(self, logs: Logs) -> None:
        """Step until every owned partition is applied to its end."""

        def applied_all() -> bool:
            applied = self.shell.batch.applied
            owned = self.consumer.positions
            return (
                bool(owned)
                and not self.shell.batch.waiting
                and all(applied.get(p) == len(logs[p]) - 1 for p in self.consumer.positions)
            )

        self.run_until(applied_all)

    def letters(self) -> Counter[tuple[int, int]]:
        sources: Counter[tuple[int, int]] = Counter()
        for value in self.producer.delivered:
            source = json.loads(value)["source"]
            sources[(source["partition"], source["offset"])] += 1
        return sources


def window_counts(client: redis.Redis) -> tuple[int, int]:
    """(valid, invalid) summed over every bucket the window holds."""
    valid = invalid = 0
    for key in client.scan_iter(match=f"{LAYOUT.bucket_key_prefix}*:counts"):
        counts = client.hgetall(key)
        valid += int(counts.get(b"valid", 0))
        invalid += int(counts.get(b"invalid", 0))
    return valid, invalid


def assert_exact(client: redis.Redis, stream: Stream) -> None:
    assert window_counts(client) == (stream.valid, len(stream.invalid))
    stored = client.hgetall(LAYOUT.applied_offsets_key(TOPIC))
    assert {int(p): int(o) for p, o in stored.items()} == {
        p: len(log) - 1 for p, log in stream.logs.items()
    }


def roll_back(client: redis.Redis, snapshot: dict[bytes, bytes | None]) -> None:
    """Redis as a lagging replica promoted in its place would be: only ``snapshot`` left."""
    client.flushall()
    for key, value in snapshot.items():
        assert value is not None
        client.restore(key, 0, value)


def idle(worker: Worker, seconds: float) -> None:
    """Step with nothing new to consume for ``seconds`` of the worker's clock."""
    until = worker.clock() + seconds
    worker.run_until(lambda: worker.clock() >= until)


def window_from(stream: Stream, start: int) -> tuple[int, int]:
    """(valid, invalid) of partition 0's messages from offset ``start`` on."""
    invalid = sum(1 for p, o in stream.invalid if p == 0 and o >= start)
    return len(stream.logs[0]) - start - invalid, invalid


@dataclass
class FatalRecord:
    """What consume() returns when librdkafka declares the consumer failed."""

    failure: KafkaError

    def error(self) -> KafkaError:
        return self.failure

    def partition(self) -> None:
        return None

    def offset(self) -> None:
        return None

    def value(self) -> None:
        return None

    def timestamp(self) -> tuple[int, int]:
        return (0, 0)


FATAL_FAILURES = [
    # As librdkafka reports a static member fenced after the coordinator restarted: the _FATAL
    # event, its own fatal flag not set.
    KafkaError(KafkaError._FATAL, "Fatal error: Broker: Static consumer fenced"),
    KafkaError(KafkaError._FENCED, "Static consumer fenced", fatal=True),
]
