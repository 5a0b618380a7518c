"""Kafka plumbing for the commands people run by hand (print, generate): a startup check that
says what to do when the broker or the topic is missing, and error reports that do not flood."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping
from typing import Any, Protocol

import click
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

from loginmetrics.runtime.clients import bootstrap_servers, kafka_error_logger

STACK_HINT = "start it with `make stack-up`"
CHECK_TIMEOUT_SECONDS = 15.0
CREDENTIALS_HINT = (
    "check --sasl-username / KAFKA_SASL_USERNAME, the password in KAFKA_SASL_PASSWORD and "
    "--sasl-mechanism / KAFKA_SASL_MECHANISM (the broker must enable that mechanism for the user)"
)
# librdkafka's wording around the broker's reason: "<broker>: SASL authentication error: <reason>
# (after 312ms in state AUTH_REQ)", or "<broker>: SASL PLAIN mechanism handshake failed: ...".
_AUTHENTICATION_NOISE = re.compile(
    r"^(\S+://\S+: )?(SASL authentication error: )?|\s*\(after \d+ms in state \w+\)$"
)


class MetadataClient(Protocol):
    """What a Producer and a Consumer both offer for the startup check."""

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> Any: ...

    def poll(self, timeout: float = -1) -> Any: ...


class LibrdkafkaLog:
    """librdkafka's own log lines, at DEBUG: ``BrokerWatch`` reports what an operator must see,
    once, instead of one line per reconnection attempt."""

    def __init__(self) -> None:
        self._logger = logging.getLogger("librdkafka")

    def log(self, _level: int, message: str, *args: Any) -> None:
        self._logger.debug(message, *args)


class BrokerWatch:
    """librdkafka's ``error_cb``: remembers whether every broker is down or refused our
    credentials, and once the command has started reports errors as ``kafka_error_logger``
    does (each kind at most once per interval)."""

    def __init__(self, bootstrap_servers: str) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.all_brokers_down = False
        # The broker's reason for refusing our login, once it has (librdkafka keeps retrying).
        self.authentication_failure: str | None = None
        self.started = False
        # After the start: the long-running processes' reporter (each kind once per interval).
        self._report = kafka_error_logger(bootstrap_servers)

    def __call__(self, error: KafkaError) -> None:
        if error.code() == KafkaError._ALL_BROKERS_DOWN:
            self.all_brokers_down = True
        if error.code() == KafkaError._AUTHENTICATION:
            self.authentication_failure = authentication_reason(error.str())
        if self.started:  # before, the startup check turns it into one clear message
            self._report(error)

    def client_config(self) -> dict[str, Any]:
        return {"error_cb": self, "logger": LibrdkafkaLog()}

    def unreachable(self, detail: str) -> click.ClickException:
        """Why the broker cannot be used: it refused our credentials when librdkafka said so
        (a refused login looks like a transport failure to the request that gave up), else it
        is not reachable."""
        if self.authentication_failure is not None:
            return click.ClickException(
                f"Kafka at {self.bootstrap_servers}: SASL authentication failed "
                f"({self.authentication_failure}) — {CREDENTIALS_HINT}"
            )
        return click.ClickException(
            f"Kafka at {self.bootstrap_servers} not reachable ({detail}) — {STACK_HINT}, "
            "or point --bootstrap-servers / KAFKA_BOOTSTRAP_SERVERS at your broker"
        )


def topic_partitions(
    client: MetadataClient,
    topic: str,
    watch: BrokerWatch,
    timeout: float = CHECK_TIMEOUT_SECONDS,
) -> list[int]:
    """The partition ids of ``topic``; a ``ClickException`` saying what to do when the broker
    does not answer or the topic does not exist."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            metadata = client.list_topics(topic, timeout=1.0)
        except KafkaException as exc:
            client.poll(0)  # serves error_cb, which learns whether every broker is down
            if (
                watch.all_brokers_down
                or watch.authentication_failure is not None
                or time.monotonic() >= deadline
            ):
                raise watch.unreachable(str(exc.args[0].str())) from exc
            continue
        break
    watch.started = True
    found = metadata.topics.get(topic)
    error = None if found is None else found.error
    if found is None or (error is not None and error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART):
        raise click.ClickException(missing_topic_message(topic, watch.bootstrap_servers))
    if error is not None:
        raise click.ClickException(f"cannot use topic {topic!r}: {error.str()}")
    return sorted(found.partitions)


def authentication_reason(error: str) -> str:
    """The broker's reason in librdkafka's report of a refused SASL login."""
    return _AUTHENTICATION_NOISE.sub("", error) or error


def missing_topic_message(topic: str, bootstrap_servers: str) -> str:
    return (
        f"topic {topic!r} does not exist on Kafka at {bootstrap_servers}. "
        "`make stack-up` creates user-login, metric-event and dead-letter-queue on the local "
        "broker; elsewhere create it with kafka-topics.sh --create --topic "
        f"{topic} --bootstrap-server {bootstrap_servers}"
    )


def require_topics(kafka: Mapping[str, str], topics: list[str]) -> None:
    """Fail with what to do unless the broker answers and every topic exists. The client lives
    only for the check: processes started afterwards build their own."""
    watch = BrokerWatch(bootstrap_servers(kafka))
    admin = AdminClient({**kafka, **watch.client_config()})
    for topic in topics:
        topic_partitions(admin, topic, watch)
