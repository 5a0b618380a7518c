"""Session fixtures: the real Kafka broker and Redis server for integration tests (the local
stack, else testcontainers where a Docker engine exists), fakeredis for unit tests.

With no broker or server reachable, integration tests fail in CI (env CI set) and are
skipped elsewhere with the reason."""

from __future__ import annotations

import importlib
import os
import socket
import uuid
import warnings
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing, suppress
from typing import Any, NoReturn

import fakeredis
import pytest
import redis
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from tests.support import wait_for_leaders

LOCAL_KAFKA = "localhost:9092"
LOCAL_REDIS = "redis://127.0.0.1:6379/0"
ADMIN_TIMEOUT_S = 30.0
START_HINT = "start the local stack with `make stack-up`"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "integration: needs the real Kafka broker and Redis server")


def _unavailable(what: str) -> NoReturn:
    message = f"{what}; {START_HINT}"
    if os.environ.get("CI"):
        pytest.fail(f"{message} (a missing service is a failure in CI)", pytrace=False)
    pytest.skip(message)


def _port_open(host: str, port: int) -> bool:
    try:
        with closing(socket.create_connection((host, port), timeout=1.0)):
            return True
    except OSError:
        return False


def _kafka_answers(bootstrap: str) -> bool:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    try:
        admin.list_topics(timeout=10)
    except KafkaException:
        return False
    return True


def _redis_answers(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def _docker_engine() -> bool:
    # A raw /_ping rather than docker.from_env(), which leaks its socket when no engine runs.
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if host.startswith("tcp://"):
        address, _, port = host.removeprefix("tcp://").rstrip("/").rpartition(":")
        return port.isdigit() and _port_open(address, int(port))
    if not host.startswith("unix://"):
        return False
    try:
        with closing(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)) as sock:
            sock.settimeout(2.0)
            sock.connect(host.removeprefix("unix://"))
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            status_line = sock.recv(64).split(b"\r\n", 1)[0]
            return status_line.split()[1:2] == [b"200"]
    except OSError:
        return False


def _testcontainers_module(name: str) -> Any:
    # Newer testcontainers moved the service modules under testcontainers.community.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            return importlib.import_module(f"testcontainers.community.{name}")
        except ImportError:
            return importlib.import_module(f"testcontainers.{name}")


@pytest.fixture(scope="session")
def _containers() -> Iterator[ExitStack]:
    """Stops at session end whatever containers the service fixtures started."""
    with ExitStack() as stack:
        yield stack


@pytest.fixture(scope="session")
def kafka_bootstrap(_containers: ExitStack) -> str:
    """Bootstrap servers of a reachable broker: KAFKA_BOOTSTRAP_SERVERS, else the local
    stack's localhost:9092, else a testcontainers broker when a Docker engine exists."""
    configured = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if configured:
        if not _kafka_answers(configured):
            _unavailable(f"no Kafka broker answers at KAFKA_BOOTSTRAP_SERVERS={configured}")
        return configured
    if _port_open("127.0.0.1", 9092) and _kafka_answers(LOCAL_KAFKA):
        return LOCAL_KAFKA
    if _docker_engine():
        kafka = _testcontainers_module("kafka").KafkaContainer().with_kraft()
        _containers.enter_context(kafka)
        return str(kafka.get_bootstrap_server())
    _unavailable(
        f"no Kafka broker at {LOCAL_KAFKA} (KAFKA_BOOTSTRAP_SERVERS unset) "
        "and no Docker engine for testcontainers"
    )


@pytest.fixture(scope="session")
def redis_url(_containers: ExitStack) -> str:
    """URL of a reachable Redis: REDIS_URL, else the local stack's 127.0.0.1:6379 db 0,
    else a testcontainers Redis when a Docker engine exists."""
    configured = os.environ.get("REDIS_URL")
    if configured:
        if not _redis_answers(configured):
            _unavailable("no Redis server answers at REDIS_URL")
        return configured
    if _port_open("127.0.0.1", 6379) and _redis_answers(LOCAL_REDIS):
        return LOCAL_REDIS
    if _docker_engine():
        server = _testcontainers_module("redis").RedisContainer("redis:7")
        _containers.enter_context(server)
        host, port = server.get_container_host_ip(), server.get_exposed_port(6379)
        return f"redis://{host}:{port}/0"
    _unavailable(
        f"no Redis server at {LOCAL_REDIS} (REDIS_URL unset) "
        "and no Docker engine for testcontainers"
    )


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """A client of the real Redis (bytes responses), closed after the test."""
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def redis_prefix(request: pytest.FixtureRequest) -> Iterator[str]:
    """A key prefix unique to the test, `test-<uuid>`. When the test uses the real Redis,
    every key under the prefix is deleted afterwards (SCAN, so other tests' keys survive)."""
    prefix = f"test-{uuid.uuid4().hex}"
    yield prefix
    if "redis_url" not in request.fixturenames:
        return  # fakeredis or no Redis at all: nothing outlives the test
    client = redis.Redis.from_url(request.getfixturevalue("redis_url"))
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def fake_redis() -> Iterator[fakeredis.FakeRedis]:
    """An empty in-memory Redis (with Lua) for unit tests."""
    client = fakeredis.FakeRedis()
    yield client
    client.close()


@pytest.fixture(scope="session")
def kafka_admin(kafka_bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": kafka_bootstrap})


@pytest.fixture
def new_topic(kafka_admin: AdminClient) -> Iterator[Callable[..., str]]:
    """Factory: `new_topic(partitions=1)` creates a topic named `test-<uuid>` and returns
    its name once every partition has a leader; the test's topics are deleted afterwards."""
    created: list[str] = []

    def create(partitions: int = 1, *, config: dict[str, str] | None = None) -> str:
        name = f"test-{uuid.uuid4().hex}"
        spec = NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})
        kafka_admin.create_topics([spec])[name].result(timeout=ADMIN_TIMEOUT_S)
        created.append(name)
        wait_for_leaders(kafka_admin, name, partitions, ADMIN_TIMEOUT_S)
        return name

    yield create
    if created:
        for future in kafka_admin.delete_topics(created).values():
            # Best effort: a leftover uuid-named topic harms no other test.
            with suppress(KafkaException):
                future.result(timeout=ADMIN_TIMEOUT_S)


@pytest.fixture
def unique_group_id() -> str:
    """A consumer group id no other test uses, `test-group-<uuid>`."""
    return f"test-group-{uuid.uuid4().hex}"
