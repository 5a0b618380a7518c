"""The session's real broker and Redis work end to end: the fixtures the other tests build on;
and the local stack's scripts start servers that answer on both loopback families."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient

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


# The default addresses name localhost, which a stock Debian or Docker /etc/hosts resolves to ::1
# first: the local stack answers there as well as on 127.0.0.1. Private servers of the scripts
# (own ports and state), so the shared stack is not touched.
ROOT = Path(__file__).resolve().parents[2]
IF_INET6 = Path("/proc/net/if_inet6")
needs_ipv6_loopback = pytest.mark.skipif(
    not IF_INET6.exists() or ("0" * 31 + "1 ") not in IF_INET6.read_text(),
    reason="no ::1 on this machine: the stack listens on 127.0.0.1 alone",
)


def _free_port() -> int:
    for _ in range(50):
        with socket.create_server(("127.0.0.1", 0)) as probe:
            port = int(probe.getsockname()[1])
        try:
            with socket.create_server(("::1", port), family=socket.AF_INET6):
                return port
        except OSError:
            continue
    pytest.fail("no port free on both loopback addresses")


def _stack(script: str, action: str, env: dict[str, str]) -> None:
    result = subprocess.run(
        ["bash", str(ROOT / "stack" / script), action],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]


@needs_ipv6_loopback
def test_the_local_redis_answers_on_both_loopback_families(tmp_path: Path) -> None:
    env = {"REDIS_PORT": str(_free_port()), "REDIS_STATE_DIR": str(tmp_path / "redis")}
    _stack("redis.sh", "start", env)
    try:
        for host in ("127.0.0.1", "[::1]"):
            client = redis.Redis.from_url(f"redis://{host}:{env['REDIS_PORT']}/0")
            assert client.ping()
            client.close()
    finally:
        _stack("redis.sh", "stop", env)


@needs_ipv6_loopback
@pytest.mark.timeout(180)
def test_the_local_broker_answers_on_both_loopback_families(tmp_path: Path) -> None:
    port = _free_port()
    env = {
        "KAFKA_PORT": str(port),
        "KAFKA_CONTROLLER_PORT": str(_free_port()),
        "KAFKA_STATE_DIR": str(tmp_path / "kafka"),
        "KAFKA_HEAP_OPTS": "-Xms128m -Xmx384m",
    }
    _stack("kafka.sh", "start", env)
    try:
        for host in ("127.0.0.1", "[::1]"):
            admin = AdminClient({"bootstrap.servers": f"{host}:{port}"})
            brokers = admin.list_topics(timeout=30).brokers
            assert [broker.port for broker in brokers.values()] == [port]
    finally:
        _stack("kafka.sh", "stop", env)
