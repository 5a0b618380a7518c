"""Redis and Kafka client factories: the one place that sets their timeouts and retry policy.

Every process builds its own clients (never across a fork or spawn)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.connection import SSLConnection, parse_url
from redis.retry import Retry
from redis.sentinel import Sentinel

from loginmetrics.runtime.errors import ConfigError
from loginmetrics.runtime.kafka_logging import LibrdkafkaLogger, kafka_error_logger

logger = logging.getLogger(__name__)

REDIS_SOCKET_TIMEOUT_SECONDS = 5.0
# A pooled connection idle this long is checked with PING before it is used again, so a Redis
# restart costs one reconnect instead of an error on the next command.
REDIS_HEALTH_CHECK_SECONDS = 30


@dataclass(frozen=True, slots=True)
class SentinelConfig:
    """Where to ask which Redis is the primary: Sentinel addresses and the monitored name."""

    addresses: tuple[tuple[str, int], ...]
    master: str
    password: str | None = None

    def describe(self) -> str:
        hosts = ",".join(format_address(host, port) for host, port in self.addresses)
        return f"sentinel {hosts} master {self.master}"


def format_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_addresses(text: str) -> tuple[tuple[str, int], ...]:
    """``host:port[,host:port...]``; IPv6 hosts in brackets (``[::1]:26379``)."""
    addresses = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        host, sep, port = item.rpartition(":")
        if not sep or not port.isdigit() or not host:
            raise ConfigError(f"{item!r} is not host:port (e.g. sentinel-1:26379)")
        addresses.append((host.removeprefix("[").removesuffix("]"), int(port)))
    if not addresses:
        raise ConfigError("no Sentinel address given (host:port[,host:port...])")
    return tuple(addresses)


def redis_client(url: str, sentinel: SentinelConfig | None = None) -> redis.Redis:
    """A client that fails fast: no retries inside redis-py (its default retries silently),
    because our own loops pause consumption, back off and say so in the log.

    With ``sentinel``, the primary is looked up through Sentinel on every new connection, so
    after a failover the next reconnect reaches the promoted replica; ``url`` then gives only
    the database, user, password and TLS.
    """
    options: dict[str, Any] = {
        "socket_timeout": REDIS_SOCKET_TIMEOUT_SECONDS,
        "socket_connect_timeout": REDIS_SOCKET_TIMEOUT_SECONDS,
        "health_check_interval": REDIS_HEALTH_CHECK_SECONDS,
        "retry": Retry(NoBackoff(), 0),
    }
    if sentinel is None:
        return redis.Redis.from_url(url, **options)
    # redis-py's Sentinel module has no type hints.
    target: dict[str, Any] = parse_url(url)  # type: ignore[no-untyped-call]
    manager = Sentinel(  # type: ignore[no-untyped-call]
        list(sentinel.addresses),
        sentinel_kwargs={
            "password": sentinel.password,
            "socket_timeout": REDIS_SOCKET_TIMEOUT_SECONDS,
            "socket_connect_timeout": REDIS_SOCKET_TIMEOUT_SECONDS,
        },
    )
    client: redis.Redis = manager.master_for(  # type: ignore[no-untyped-call]
        sentinel.master,
        db=target.get("db", 0),
        username=target.get("username"),
        password=target.get("password"),
        ssl=target.get("connection_class") is SSLConnection,
        **options,
    )
    return client


def bootstrap_servers(kafka: Mapping[str, Any]) -> str:
    return str(kafka.get("bootstrap.servers", "?"))


def kafka_client_config(
    config: Mapping[str, Any], kafka: Mapping[str, Any], client_id: str
) -> dict[str, Any]:
    """``config`` with this process's client id, an operator-worded error callback and
    librdkafka's own log lines routed through Python logging (never raw to stderr)."""
    return {
        **config,
        "client.id": client_id,
        "error_cb": kafka_error_logger(bootstrap_servers(kafka)),
        "logger": LibrdkafkaLogger(),
    }
