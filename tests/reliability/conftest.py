"""Fixtures of the fault-injection tests: loopback-only endpoints of the shared stack, and a
private Kafka broker or Redis server (own ports, own state dir) a test may stop and restart.

The shared broker and Redis serve other tests at the same time: they are never stopped here."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlsplit

import pytest
import redis
from confluent_kafka.admin import AdminClient, NewTopic

from loginmetrics.window import WindowLayout
from tests.support import pipeline_env, wait_for_leaders

ROOT = Path(__file__).resolve().parents[2]
LOOPBACK = "127.0.0.1"
STACK_TIMEOUT_S = 90


def ephemeral_ports() -> range:
    """The kernel's range of source ports for outgoing connections."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
    except (OSError, ValueError):
        return range(32768, 61000)
    return range(int(low), int(high) + 1)


def free_port_block(count: int = 1) -> int:
    """The first of ``count`` consecutive free loopback ports, below the ephemeral range.

    A server a test stops and starts again must not listen on an ephemeral port: while it is
    down, a client reconnecting to 127.0.0.1:PORT can be given PORT itself as its source port
    (a TCP self-connect), and the restarted server then fails with "Address already in use".
    """
    top = min(ephemeral_ports().start, 65536) - count
    rng = random.Random()
    for _ in range(200):
        first = rng.randrange(20_000, top)
        sockets = []
        try:
            for port in range(first, first + count):
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sockets.append(sock)
                sock.bind((LOOPBACK, port))
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
        return first
    raise AssertionError(f"no {count} consecutive free ports below the ephemeral range")


def free_port() -> int:
    return free_port_block(1)


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
    """A redis-server of this test alone (stack/redis.sh on another port and state dir; its
    durable defaults, plus ``args`` such as ``--replicaof 127.0.0.1 PORT``)."""

    def __init__(self, state: Path, args: str = "") -> None:
        self.port = free_port()
        self.url = f"redis://{LOOPBACK}:{self.port}/0"
        self._state = state
        self._env = {
            "REDIS_PORT": str(self.port),
            "REDIS_STATE_DIR": str(state),
            "REDIS_ARGS": args,
        }

    @property
    def pid(self) -> int:
        return int((self._state / "redis.pid").read_text())

    def kill(self) -> None:
        """SIGKILL, as the kernel's OOM killer or a node failure would: no save, no goodbye."""
        os.kill(self.pid, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while _port_open(self.port):
            assert time.monotonic() < deadline, "Redis did not die"
            time.sleep(0.05)

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
        self._state = state
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

    @property
    def pid(self) -> int:
        return int((self._state / "kafka.pid").read_text())

    def kill(self) -> None:
        """SIGKILL, as a crashed broker: no controlled shutdown. What it acknowledged is in the
        page cache, so a ``start()`` finds it (after recovering its logs)."""
        pid = self.pid
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while Path(f"/proc/{pid}").exists():
            assert time.monotonic() < deadline, "the broker did not die"
            time.sleep(0.05)

    def create_topic(self, name: str, partitions: int) -> None:
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        spec = NewTopic(name, num_partitions=partitions, replication_factor=1)
        admin.create_topics([spec])[name].result(timeout=30)
        wait_for_leaders(admin, name, partitions)


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


class WorkerRun(NamedTuple):
    """What a fault-injection test runs `loginmetrics worker` with."""

    source: str  # the input topic
    dlq: str  # the dead-letter topic
    layout: WindowLayout  # the test's window (``redis_prefix``, default size)
    env: dict[str, str]
    log: Path  # the worker pool's log


@pytest.fixture
def worker_run(
    request: pytest.FixtureRequest, redis_prefix: str, unique_group_id: str, tmp_path: Path
) -> Callable[..., WorkerRun]:
    """Factory: ``worker_run(redis_url, partitions, **settings)`` creates an input topic of
    ``partitions`` and a one-partition dead-letter topic, on the shared broker or on ``kafka``
    (a private broker) when given, and the environment of a worker pool in the test's own group
    and Redis prefix with LOGINMETRICS_<SETTING>s added."""

    def make(
        redis_url: str,
        partitions: int,
        *,
        kafka: PrivateKafka | None = None,
        source_config: dict[str, str] | None = None,
        **settings: str | int,
    ) -> WorkerRun:
        if kafka is None:
            # Only here: a test on a private broker must not need the shared one.
            bootstrap = request.getfixturevalue("local_kafka")
            new_topic = request.getfixturevalue("new_topic")
            source, dlq = new_topic(partitions, config=source_config), new_topic(1)
        else:
            bootstrap = kafka.bootstrap
            source, dlq = f"test-{uuid.uuid4().hex}", f"test-{uuid.uuid4().hex}"
            kafka.create_topic(source, partitions)
            kafka.create_topic(dlq, 1)
        env = pipeline_env(
            bootstrap,
            redis_url,
            redis_prefix,
            input_topic=source,
            dlq_topic=dlq,
            group_id=unique_group_id,
            **settings,
        )
        return WorkerRun(
            source, dlq, WindowLayout(prefix=redis_prefix), env, tmp_path / "worker.log"
        )

    return make
