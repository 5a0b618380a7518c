"""Fixtures of the fault-injection tests: loopback-only endpoints of the shared stack, and a
private Kafka broker or Redis server (own ports, own state dir) a test may stop and restart.

The shared broker and Redis serve other tests at the same time: they are never stopped here."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
from confluent_kafka.admin import AdminClient, NewTopic

ROOT = Path(__file__).resolve().parents[2]
LOOPBACK = "127.0.0.1"
STACK_TIMEOUT_S = 90


def free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def _on_loopback(host: str | None) -> str | None:
    """``host`` as 127.0.0.1 when it is the loopback interface, None otherwise."""
    return LOOPBACK if host in ("localhost", LOOPBACK) else None


@pytest.fixture(scope="session")
def local_kafka(kafka_bootstrap: str) -> str:
    """The shared broker's bootstrap servers, spelled 127.0.0.1: faults stay on this machine."""
    servers = []
    for server in kafka_bootstrap.split(","):
        host, _, port = server.rpartition(":")
        if _on_loopback(host) is None:
            pytest.skip(f"fault injection runs against 127.0.0.1 only, not {kafka_bootstrap}")
        servers.append(f"{LOOPBACK}:{port}")
    return ",".join(servers)


@pytest.fixture(scope="session")
def local_redis_url(redis_url: str) -> str:
    parts = urlsplit(redis_url)
    if _on_loopback(parts.hostname) is None or parts.password or parts.username:
        pytest.skip("fault injection runs against a password-less Redis on 127.0.0.1 only")
    return parts._replace(netloc=f"{LOOPBACK}:{parts.port or 6379}").geturl()


def _stack(script: str, action: str, env: dict[str, str]) -> None:
    result = subprocess.run(
        ["bash", str(ROOT / "stack" / script), action],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=STACK_TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, f"{script} {action} failed:\n{result.stderr[-3000:]}"


class PrivateRedis:
    """A redis-server of this test alone (stack/redis.sh on another port and state dir)."""

    def __init__(self, state: Path) -> None:
        self.port = free_port()
        self.url = f"redis://{LOOPBACK}:{self.port}/0"
        self._env = {"REDIS_PORT": str(self.port), "REDIS_STATE_DIR": str(state)}

    def start(self) -> None:
        """Start (again); a restart loads what ``shutdown_saving`` saved."""
        _stack("redis.sh", "start", self._env)

    def stop(self) -> None:
        _stack("redis.sh", "stop", self._env)

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=10)

    def shutdown_saving(self) -> None:
        """Stop the way an operator restarts Redis on purpose: save the dataset, then exit."""
        client = self.client()
        try:
            client.shutdown(save=True)
        except redis.ConnectionError:
            pass  # the server closed the connection on its way out: expected
        finally:
            client.close()
        deadline = time.monotonic() + 20
        while _port_open(self.port):
            assert time.monotonic() < deadline, "Redis did not shut down"
            time.sleep(0.05)


class PrivateKafka:
    """A KRaft broker of this test alone (stack/kafka.sh on other ports and state dir)."""

    def __init__(self, state: Path) -> None:
        self.port = free_port()
        self.bootstrap = f"{LOOPBACK}:{self.port}"
        self._env = {
            "KAFKA_PORT": str(self.port),
            "KAFKA_CONTROLLER_PORT": str(free_port()),
            "KAFKA_STATE_DIR": str(state),
            "KAFKA_HEAP_OPTS": "-Xms128m -Xmx512m",
        }

    def start(self) -> None:
        _stack("kafka.sh", "start", self._env)

    def stop(self) -> None:
        """SIGTERM and wait: a controlled shutdown, every acknowledged message on disk."""
        _stack("kafka.sh", "stop", self._env)

    def create_topic(self, name: str, partitions: int) -> None:
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        spec = NewTopic(name, num_partitions=partitions, replication_factor=1)
        admin.create_topics([spec])[name].result(timeout=30)
        deadline = time.monotonic() + 30
        while True:
            metadata = admin.list_topics(topic=name, timeout=30).topics[name]
            leaders = [p.leader for p in metadata.partitions.values()]
            if metadata.error is None and len(leaders) == partitions and min(leaders) >= 0:
                return
            assert time.monotonic() < deadline, f"topic {name} has no leader"
            time.sleep(0.1)


def _port_open(port: int) -> bool:
    try:
        with closing(socket.create_connection((LOOPBACK, port), timeout=0.5)):
            return True
    except OSError:
        return False


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def private_kafka(tmp_path: Path) -> Iterator[PrivateKafka]:
    broker = PrivateKafka(tmp_path / "kafka")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
