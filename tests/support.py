"""What tests share to drive the real pipeline: run `loginmetrics`, produce known login streams,
read back topics and the window, and the ground truth a stream must add up to, computed from
its plan (what the generator made each message to be), never by the code under test."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import pytest
import redis
from confluent_kafka import Consumer, Producer

# Running `loginmetrics` and waiting on the broker are the benchmarks' too; they live there,
# since bench must not import tests. Re-exported: tests take every helper from this module.
from bench.stack import child_pids as child_pids
from bench.stack import loginmetrics as loginmetrics
from bench.stack import pipeline_env as pipeline_env
from bench.stack import produce_one as produce_one
from bench.stack import wait_for_leaders as wait_for_leaders
from bench.stack import worker_pids as worker_pids
from loginmetrics.cli.traffic import VARIED, LoginTraffic, PlannedMessage
from loginmetrics.window import WindowLayout, WindowReader, WindowTotals

# -- the command line -----------------------------------------------------------------------------


def run_loginmetrics(
    bootstrap: str, *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`loginmetrics ARGS` to its end against the broker at ``bootstrap``; output captured."""
    return subprocess.run(
        [sys.executable, "-m", "loginmetrics", *args],
        env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


# -- known streams and their ground truth ---------------------------------------------------------

# Every message of a known stream carries this time: the stream is the same on every run.
KNOWN_TIME = 1_736_653_976.0
# Unusable messages the generator does not make, for tests only: a tombstone, and a message over
# the worker's default size limit (64 KiB).
TEST_ONLY_INVALID = (
    PlannedMessage(b"", None, "not_an_object", kind="tombstone"),
    PlannedMessage(b"", b'{"pad": "' + b"x" * 70_000 + b'"}', "too_large", kind="too_large"),
)
# Every fifth unusable message of a known stream is a test-only one. Five is coprime with the
# generator's eight kinds in turn, so every kind still comes up.
TEST_ONLY_EVERY = 5


def planned_stream(
    count: int, users: int, invalid_every: int = 20, seed: int = 7
) -> list[PlannedMessage]:
    """``count`` logins from a pool of ``users`` in the varied mix; every ``invalid_every``-th
    one is unusable: every kind the generator makes in turn, tombstones and 70 KB messages."""
    traffic = LoginTraffic(
        seed, users, mix=VARIED, invalid_every=invalid_every, clock=lambda: KNOWN_TIME
    )
    plan = traffic.plan(count)
    unusable = [n for n, message in enumerate(plan) if message.code is not None]
    for turn, n in enumerate(unusable[TEST_ONLY_EVERY - 1 :: TEST_ONLY_EVERY]):
        extra = TEST_ONLY_INVALID[turn % len(TEST_ONLY_INVALID)]
        plan[n] = dataclasses.replace(extra, key=plan[n].key)  # the slot's key and partition
    return plan


@dataclass
class GroundTruth:
    valid: int = 0
    invalid: int = 0
    users: set[str] = field(default_factory=set)
    ips: set[str] = field(default_factory=set)
    devices: Counter[str] = field(default_factory=Counter)
    versions: Counter[str] = field(default_factory=Counter)
    locales: Counter[str] = field(default_factory=Counter)
    invalid_codes: Counter[str] = field(default_factory=Counter)


def truth_of(messages: Iterable[PlannedMessage]) -> GroundTruth:
    """What the window must hold after ``messages``, from their plan."""
    truth = GroundTruth()
    for message in messages:
        if message.code is not None:
            truth.invalid += 1
            truth.invalid_codes[message.code] += 1
            continue
        event = message.event
        assert event is not None
        truth.valid += 1
        truth.users.add(event["user_id"])
        truth.ips.add(event["ip"])
        truth.devices[event["device_type"]] += 1
        truth.versions[event["app_version"]] += 1
        truth.locales[event["locale"]] += 1
    return truth


@dataclass
class LoginStream:
    """``messages`` as (key, value) pairs and the ``truth`` they add up to."""

    messages: list[tuple[bytes, bytes | None]]
    truth: GroundTruth


def login_stream(count: int, users: int, invalid_every: int = 20, seed: int = 7) -> LoginStream:
    """The ``planned_stream`` as messages to produce, and its ground truth."""
    plan = planned_stream(count, users, invalid_every, seed)
    return LoginStream([(m.key or b"", m.value) for m in plan], truth_of(plan))


def assert_matches(totals: WindowTotals, truth: GroundTruth) -> None:
    """Counters and distributions exact; distinct users and IPs within HyperLogLog's 2 %."""
    assert (totals.valid, totals.invalid) == (truth.valid, truth.invalid)
    assert totals.devices == dict(truth.devices)
    assert totals.versions == dict(truth.versions)
    assert totals.locales == dict(truth.locales)
    assert totals.active_users == pytest.approx(len(truth.users), rel=0.02)
    assert totals.unique_ips == pytest.approx(len(truth.ips), rel=0.02)


# -- Kafka ----------------------------------------------------------------------------------------


def produce(bootstrap: str, topic: str, messages: Iterable[tuple[bytes, bytes | None]]) -> None:
    producer = Producer(
        {"bootstrap.servers": bootstrap, "linger.ms": 20, "message.max.bytes": 2_000_000}
    )
    for key, value in messages:
        produce_one(producer, topic, key, value, backoff=0.1)
    assert producer.flush(60) == 0, "not every test message was delivered"


def topic_reader(
    bootstrap: str, topic: str, group_id: str = "", config: Mapping[str, str] | None = None
) -> Consumer:
    """A consumer of ``topic`` from its start that commits nothing, in ``group_id`` or else a
    group of its own; ``config`` adds librdkafka settings (e.g. SASL)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group_id or f"test-reader-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            **(config or {}),
        }
    )
    consumer.subscribe([topic])
    return consumer


def consume(bootstrap: str, topic: str, count: int, timeout: float = 60.0) -> list[bytes]:
    """Values of the first ``count`` messages of ``topic`` (fails after ``timeout``)."""
    consumer = topic_reader(bootstrap, topic)
    values: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while len(values) < count and time.monotonic() < deadline:
            for message in consumer.consume(1000, 0.5):
                if message.error() is None:
                    values.append(message.value() or b"")
    finally:
        consumer.close()
    assert len(values) >= count, f"only {len(values)} of {count} messages on {topic}"
    return values


class MetricEvents:
    """Follows the metric topic from its start: (window_end, Kafka timestamp in ms) pairs."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self._consumer = topic_reader(bootstrap, topic)
        self.events: list[tuple[str, int]] = []

    def wait_for(self, until: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not until():
            assert time.monotonic() < deadline, f"timed out waiting for {what}: {self.events}"
            for message in self._consumer.consume(100, 0.2):
                assert message.error() is None, message.error()
                event = json.loads(message.value() or b"{}")
                self.events.append((event["window_end"], message.timestamp()[1]))

    def count_after(self, moment_ms: float) -> int:
        return sum(1 for _, at in self.events if at > moment_ms)

    def close(self) -> None:
        self._consumer.close()


# -- Redis ----------------------------------------------------------------------------------------


def lease_holder_pid(client: redis.Redis, layout: WindowLayout) -> int | None:
    """Pid of the aggregator holding the leadership lease, if any."""
    token = client.get(layout.aggregator_lease_key)  # "<host>:<pid>:<random>"
    if token is None:
        return None
    return int((token.decode() if isinstance(token, bytes) else str(token)).split(":")[1])


def current_totals(client: redis.Redis, layout: WindowLayout) -> WindowTotals:
    """Totals of the window ending with the bucket now being written."""
    reader = WindowReader(client, layout)
    return reader.read(reader.last_complete_window_end() + layout.bucket_seconds)


def wait_for_messages(
    client: redis.Redis, layout: WindowLayout, expected: int, timeout: float
) -> WindowTotals:
    """Poll the window until it holds ``expected`` messages; fail on timeout or overshoot."""
    deadline = time.monotonic() + timeout
    totals = current_totals(client, layout)
    while totals.total_messages < expected and time.monotonic() < deadline:
        time.sleep(0.25)
        totals = current_totals(client, layout)
    assert totals.total_messages == expected, (
        f"window holds {totals.total_messages} messages, expected {expected}"
    )
    return totals
