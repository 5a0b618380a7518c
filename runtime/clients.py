"""Redis and Kafka client factories: the one place that sets their timeouts and retry policy.

Every process builds its own clients (never across a fork or spawn)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import redis
from confluent_kafka import KafkaError
from redis.backoff import NoBackoff
from redis.retry import Retry

logger = logging.getLogger(__name__)

REDIS_SOCKET_TIMEOUT_SECONDS = 5.0
# A pooled connection idle this long is checked with PING before it is used again, so a Redis
# restart costs one reconnect instead of an error on the next command.
REDIS_HEALTH_CHECK_SECONDS = 30


def redis_client(url: str) -> redis.Redis:
    """A client that fails fast: no retries inside redis-py (its default retries silently),
    because our own loops pause consumption, back off and say so in the log."""
    return redis.Redis.from_url(
        url,
        socket_timeout=REDIS_SOCKET_TIMEOUT_SECONDS,
        socket_connect_timeout=REDIS_SOCKET_TIMEOUT_SECONDS,
        health_check_interval=REDIS_HEALTH_CHECK_SECONDS,
        retry=Retry(NoBackoff(), 0),
    )


def bootstrap_servers(kafka: Mapping[str, Any]) -> str:
    return str(kafka.get("bootstrap.servers", "?"))


def kafka_error_logger(bootstrap: str) -> Callable[[KafkaError], None]:
    """librdkafka's ``error_cb``, worded for an operator."""

    def log_error(error: KafkaError) -> None:
        if error.code() in (KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN):
            logger.error(
                "Kafka at %s not reachable (%s); is the broker running? Locally: `make stack-up`",
                bootstrap,
                error.str(),
            )
        else:
            logger.error("Kafka error: %s", error.str())

    return log_error


def kafka_client_config(
    config: Mapping[str, Any], kafka: Mapping[str, Any], client_id: str
) -> dict[str, Any]:
    """``config`` with this process's client id and an operator-worded error callback."""
    return {
        **config,
        "client.id": client_id,
        "error_cb": kafka_error_logger(bootstrap_servers(kafka)),
    }
