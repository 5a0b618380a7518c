"""The session's real broker and Redis work end to end: the fixtures the other tests build on."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import redis
from confluent_kafka import Consumer, Producer

pytestmark = pytest.mark.integration


def test_messages_produced_to_a_new_topic_are_consumed_back_in_order(
    kafka_bootstrap: str, new_topic: Callable[..., str], unique_group_id: str
) -> None:
    topic = new_topic(1)
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "enable.idempotence": True})
    sent = [f"login-{i}".encode() for i in range(10)]
    for value in sent:
        producer.produce(topic, value=value, key=b"user")
    assert producer.flush(10) == 0

    consumer = Consumer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "group.id": unique_group_id,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    received: list[bytes] = []
    try:
        consumer.subscribe([topic])
        for _ in range(60):
            for message in consumer.consume(num_messages=10, timeout=1.0):
                assert message.error() is None, message.error()
                received.append(message.value() or b"")
            if len(received) >= len(sent):
                break
    finally:
        consumer.close()
    assert received == sent


def test_redis_keeps_a_value_under_the_test_prefix(
    redis_client: redis.Redis, redis_prefix: str
) -> None:
    key = f"{redis_prefix}:greeting"
    redis_client.set(key, "hello", ex=60)
    assert redis_client.get(key) == b"hello"
