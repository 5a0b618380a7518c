"""Drives the real pipeline in tests: produce a stream, run `loginmetrics`, read back."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import redis
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient

from loginmetrics.window import WindowLayout, WindowReader, WindowTotals


def produce(bootstrap: str, topic: str, messages: Iterable[tuple[bytes, bytes | None]]) -> None:
    producer = Producer(
        {"bootstrap.servers": bootstrap, "linger.ms": 20, "message.max.bytes": 2_000_000}
    )
    for key, value in messages:
        produce_one(producer, topic, key, value, backoff=0.1)
    assert producer.flush(60) == 0, "not every test message was delivered"


def produce_one(
    producer: Producer, topic: str, key: bytes, value: bytes | None, backoff: float
) -> None:
    """``producer.produce``, waiting out a full local queue (BufferError) by serving delivery
    reports for ``backoff`` seconds at a time."""
    while True:
        try:
            producer.produce(topic, value, key=key)
            return
        except BufferError:
            producer.poll(backoff)


def wait_for_leaders(
    admin: AdminClient, topic: str, partitions: int, timeout: float = 30.0
) -> None:
    """Wait until every partition of a new ``topic`` has a leader."""
    # CreateTopics returns before every partition has a leader; producing earlier fails.
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        metadata = admin.list_topics(topic=topic, timeout=timeout).topics.get(topic)
        if (
            metadata is not None
            and metadata.error is None
            and len(metadata.partitions) == partitions
            and all(p.leader >= 0 for p in metadata.partitions.values())
        ):
            return
        time.sleep(0.1)
    raise TimeoutError(f"topic {topic} has no leader for every partition")


def topic_reader(bootstrap: str, topic: str, group_id: str = "") -> Consumer:
    """A consumer of ``topic`` from its start that commits nothing, in ``group_id`` or else a
    group of its own."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group_id or f"test-reader-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
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


def pipeline_env(
    bootstrap: str, redis_url: str, prefix: str, **settings: str | int
) -> dict[str, str]:
    """Environment for a `loginmetrics` process: connection plus LOGINMETRICS_<OPTION>s."""
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "REDIS_URL": redis_url,
        "LOGINMETRICS_REDIS_PREFIX": prefix,
    }
    env.update({f"LOGINMETRICS_{name.upper()}": str(value) for name, value in settings.items()})
    return env


@contextmanager
def loginmetrics(
    *args: str, env: dict[str, str], log: Path, stop_timeout: float = 40.0
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `loginmetrics ARGS` in its own session; SIGTERM it afterwards and check it exits 0."""
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "loginmetrics", *args],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield process
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(stop_timeout)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
                    raise AssertionError(
                        f"loginmetrics {' '.join(args)} did not stop on SIGTERM; log {log}"
                    ) from None


def child_pids(parent: int) -> list[int]:
    """Processes a supervisor spawned (not multiprocessing's resource tracker)."""
    pids: list[int] = []
    for task in Path(f"/proc/{parent}/task").iterdir():
        for pid in (task / "children").read_text().split():
            try:
                command = Path(f"/proc/{pid}/cmdline").read_bytes()
            except FileNotFoundError:
                continue
            if b"spawn_main" in command:
                pids.append(int(pid))
    return pids
