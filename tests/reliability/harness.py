"""What the fault-injection tests share: a paced producer of a planned stream that records where
every message landed, and readers for the window, the DLQ and the logs. The planned streams and
their ground truth are ``tests.support``'s."""

from __future__ import annotations

import bisect
import json
import logging
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import redis
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from loginmetrics.cli.traffic import PlannedMessage
from loginmetrics.window import WindowLayout, WindowTotals
from tests.support import current_totals

Source = tuple[int, int]  # (partition, offset) of a message in the input topic
# librdkafka's own log lines (a broker going away is expected here) go to pytest's log capture.
kafka_logger = logging.getLogger("tests.reliability.kafka")


class Feeder:
    """Produces a planned stream in a background thread, at ``rate`` messages per second (None:
    as fast as it goes), and records the partition and offset each message landed at.

    The producer is idempotent, so a broker outage neither loses nor duplicates a message in the
    input topic: the ground truth stays exact whatever the test does to the broker. ``config``
    adds librdkafka settings (e.g. SASL). ``pause()`` makes the stream idle until ``resume()``.
    """

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        messages: Sequence[PlannedMessage],
        rate: float | None = None,
        config: Mapping[str, str] | None = None,
    ) -> None:
        self._producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "enable.idempotence": True,
                "linger.ms": 5,
                "message.max.bytes": 2_000_000,
                "message.timeout.ms": 180_000,
                "logger": kafka_logger,
                **(config or {}),
            }
        )
        self._topic = topic
        self._messages = messages
        self._rate = rate
        self._stop = threading.Event()
        self._flowing = threading.Event()
        self._flowing.set()
        self._thread = threading.Thread(target=self._run, name="feeder", daemon=True)
        self.sources: list[Source | None] = [None] * len(messages)
        # Wall-clock time (time.time()) each message was handed to the producer, in order.
        self.produced_at: list[float] = []
        self._acknowledged: dict[int, int] = {}  # partition -> highest offset acknowledged
        self._acknowledged_lock = threading.Lock()
        self.errors: list[str] = []
        self.produced = 0
        self.finished = threading.Event()

    def __enter__(self) -> Feeder:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def _delivered(self, index: int) -> Callable[[Any, Any], None]:
        def on_delivery(error: Any, message: Any) -> None:
            if error is not None:
                self.errors.append(f"message {index}: {error}")
                return
            partition, offset = message.partition(), message.offset()
            self.sources[index] = (partition, offset)
            with self._acknowledged_lock:
                self._acknowledged[partition] = max(offset, self._acknowledged.get(partition, -1))

        return on_delivery

    def _run(self) -> None:
        started = time.monotonic()
        for index, message in enumerate(self._messages):
            if not self._flowing.is_set():
                idle_from = time.monotonic()
                while not self._flowing.is_set() and not self._stop.is_set():
                    self._producer.poll(0.05)  # delivery reports keep coming while idle
                started += time.monotonic() - idle_from  # the pace goes on, no catch-up burst
            if self._stop.is_set():
                break
            if self._rate is not None:
                while index >= (time.monotonic() - started) * self._rate:
                    if self._stop.wait(0.005):
                        break
                if self._stop.is_set():
                    break
            self.produced_at.append(time.time())
            while True:
                try:
                    self._producer.produce(
                        self._topic,
                        message.value,
                        key=message.key,
                        on_delivery=self._delivered(index),
                    )
                    break
                except BufferError:
                    self._producer.poll(0.05)
            self.produced = index + 1
            self._producer.poll(0)
        self.finished.set()

    def stop(self, timeout: float = 120.0) -> int:
        """Stop producing; wait until every produced message is acknowledged; return how many."""
        self._stop.set()
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the feeder thread did not stop"
        assert self._producer.flush(timeout) == 0, "produced messages were never acknowledged"
        assert not self.errors, f"messages not delivered: {self.errors[:5]}"
        return self.produced

    def pause(self) -> None:
        """Produce nothing until ``resume()``: the stream goes idle."""
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    def acknowledged(self) -> dict[int, int]:
        """Partition -> the highest offset the broker has acknowledged so far."""
        with self._acknowledged_lock:
            return dict(self._acknowledged)

    def produced_by(self, moment: float) -> int:
        """How many messages were handed to the producer up to wall-clock time ``moment``: no
        reader of the topic can have seen more by then."""
        return bisect.bisect_right(self.produced_at, moment)

    def wait_finished(self, timeout: float) -> None:
        assert self.finished.wait(timeout), f"feeder produced only {self.produced} in {timeout} s"

    @property
    def produced_messages(self) -> Sequence[PlannedMessage]:
        return self._messages[: self.produced]

    def expected_dead_letters(self) -> dict[Source, str]:
        """Source partition and offset -> error code, of every unusable message produced."""
        expected: dict[Source, str] = {}
        for message, source in zip(self.produced_messages, self.sources, strict=False):
            assert source is not None, "stop() the feeder before asking where messages went"
            if message.code is not None:
                expected[source] = message.code
        return expected


def read_topic(bootstrap: str, topic: str, timeout: float = 60.0) -> list[bytes]:
    """Every message value now in ``topic`` (up to each partition's high watermark)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-reader-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "enable.partition.eof": False,
            "logger": kafka_logger,
        }
    )
    values: list[bytes] = []
    try:
        metadata = consumer.list_topics(topic, timeout=timeout).topics[topic]
        ends: dict[int, int] = {}
        for partition in metadata.partitions:
            _low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=timeout
            )
            ends[partition] = high
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        position = dict.fromkeys(ends, 0)
        deadline = time.monotonic() + timeout
        while any(position[p] < ends[p] for p in ends):
            assert time.monotonic() < deadline, f"read {len(values)} messages of {topic} only"
            for message in consumer.consume(1000, 0.5):
                assert message.error() is None, message.error()
                partition, offset = message.partition(), message.offset()
                assert partition is not None
                assert offset is not None
                position[partition] = offset + 1
                values.append(message.value() or b"")
    finally:
        consumer.close()
    return values


def check_dead_letters(
    values: Sequence[bytes], expected: dict[Source, str], topic: str
) -> tuple[int, Counter[str]]:
    """Every unusable message has a dead letter with its code and source; no dead letter for
    anything else; duplicates only of the same source. Returns (duplicates, letters per code)."""
    seen: Counter[Source] = Counter()
    wrong: list[str] = []
    codes: Counter[str] = Counter()
    for value in values:
        letter = json.loads(value)
        source = (letter["source"]["partition"], letter["source"]["offset"])
        seen[source] += 1
        codes[letter["error_code"]] += 1
        want = expected.get(source)
        if letter["topic_name"] != topic or want != letter["error_code"]:
            wrong.append(f"{source}: {letter['error_code']} ({letter['error']}), expected {want}")
    missing = sorted(set(expected) - set(seen))
    assert not wrong, f"{len(wrong)} wrong dead letters, e.g. {wrong[:10]}"
    assert not missing, f"{len(missing)} unusable messages have no dead letter: {missing[:10]}"
    return sum(seen.values()) - len(seen), codes


def wait_for_total(
    client: redis.Redis, layout: WindowLayout, expected: int, timeout: float, log: Path
) -> WindowTotals:
    """Poll the window until it holds ``expected`` messages; fail at once on more (a message
    counted twice), or on timeout; then check it stays there (nothing applied late)."""
    deadline = time.monotonic() + timeout
    while True:
        totals = current_totals(client, layout)
        assert totals.total_messages <= expected, (
            f"window holds {totals.total_messages} messages, more than the {expected} produced"
        )
        if totals.total_messages == expected:
            break
        assert time.monotonic() < deadline, (
            f"window holds {totals.total_messages} of {expected} messages after {timeout} s; "
            f"log tail:\n{tail(log)}"
        )
        time.sleep(0.25)
    time.sleep(2.0)  # a batch applied twice, or late, would show up now
    totals = current_totals(client, layout)
    assert totals.total_messages == expected, "the window moved after holding every message"
    return totals


def wait_until(condition: Callable[[], bool], timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}; log:\n{tail(log)}"
        time.sleep(0.1)


def tail(log: Path, lines: int = 40) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def log_lines(log: Path, pid: int | None = None) -> list[str]:
    """Lines of a `loginmetrics` text log, only those of process ``pid`` if given."""
    lines = log.read_text(errors="replace").splitlines()
    if pid is None:
        return lines
    marker = re.compile(rf"\[{pid}\] ")
    return [line for line in lines if marker.search(line)]


def applied_offsets(client: redis.Redis, layout: WindowLayout, topic: str) -> dict[int, int]:
    raw: dict[bytes | str, bytes | str] = client.hgetall(layout.applied_offsets_key(topic))
    return {int(partition): int(offset) for partition, offset in raw.items() if offset}
