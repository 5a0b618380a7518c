"""Which metric events are on the metric topic: read back from the tail of each partition when
a new leader finds claims whose delivery its predecessor never saw confirmed."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import msgspec
from confluent_kafka import Consumer, KafkaException, TopicPartition

# How far back the tail is read: a leader claims at most a step's events before it confirms
# them, far fewer than this.
LOOK_BACK_MESSAGES = 5_000
TIMEOUT_SECONDS = 10.0

Published = tuple[int, int, int]  # window seconds, window end (epoch seconds), revision


class _Head(msgspec.Struct):
    window_end: str
    window_seconds: int
    revision: int = 0


_decode = msgspec.json.Decoder(_Head).decode


def published_events(config: Mapping[str, Any], topic: str, key: bytes) -> set[Published]:
    """The (window seconds, end, revision) of the events keyed ``key`` among the last
    ``LOOK_BACK_MESSAGES`` of every partition of ``topic``. Raises KafkaException when the
    broker does not answer in time: the caller retries."""
    consumer = Consumer(
        {
            **config,
            "group.id": f"loginmetrics-check-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    try:
        return _read_tail(consumer, topic, key)
    finally:
        consumer.close()


def _read_tail(consumer: Consumer, topic: str, key: bytes) -> set[Published]:
    metadata = consumer.list_topics(topic, timeout=TIMEOUT_SECONDS)
    found = metadata.topics.get(topic)
    if found is None or found.error is not None:
        raise KafkaException(f"topic {topic} is not readable: {found.error if found else None}")
    starts = []
    ends: dict[int, int] = {}
    for partition in found.partitions:
        low, high = consumer.get_watermark_offsets(
            TopicPartition(topic, partition), timeout=TIMEOUT_SECONDS
        )
        if high > low:
            starts.append(TopicPartition(topic, partition, max(low, high - LOOK_BACK_MESSAGES)))
            ends[partition] = high
    consumer.assign(starts)
    events: set[Published] = set()
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while ends:
        if time.monotonic() > deadline:
            raise KafkaException(f"could not read the tail of {topic} in {TIMEOUT_SECONDS:g} s")
        for message in consumer.consume(500, 0.5):
            partition, offset = message.partition(), message.offset()
            if message.error() is None and message.key() == key:
                events.add(_published(message.value() or b""))
            if partition in ends and offset is not None and offset >= ends[partition] - 1:
                del ends[partition]
    return events


def _published(value: bytes) -> Published:
    try:
        head = _decode(value)
    except msgspec.DecodeError:
        return (0, 0, -1)  # not an event of ours: matches no claim
    end = datetime.fromisoformat(head.window_end).replace(tzinfo=UTC).timestamp()
    return (head.window_seconds, round(end), head.revision)
