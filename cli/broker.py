"""Kafka plumbing for the commands people run by hand (print, generate): a startup check that
says what to do when the broker or the topic is missing, and error reports that do not flood."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

from loginmetrics.cli.logs import CommandError
from loginmetrics.runtime.clients import bootstrap_servers
from loginmetrics.runtime.kafka_logging import (
    KafkaReach,
    LibrdkafkaLogger,
    kafka_error_logger,
    on_loopback,
    split_servers,
)

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


class BrokerWatch:
    """librdkafka's ``error_cb``: remembers whether every broker is down or refused our
    credentials, and once the command has started reports errors as ``kafka_error_logger``
    does (each kind at most once per interval)."""

    def __init__(self, bootstrap_servers: str, reach: KafkaReach | None = None) -> None:
        self.bootstrap_servers = bootstrap_servers
        # Every bootstrap broker is down and none of their addresses answers: librdkafka says
        # "1/1 brokers are down" as soon as the first address of localhost (::1) refuses.
        self.all_brokers_down = False
        # The broker's reason for refusing our login, once it has (librdkafka keeps retrying).
        self.authentication_failure: str | None = None
        self.started = False
        self._reach = reach if reach is not None else KafkaReach(bootstrap_servers)
        # After the start: the long-running processes' reporter (each kind once per interval).
        self._report = kafka_error_logger(bootstrap_servers, reach=self._reach)

    def __call__(self, error: KafkaError) -> None:
        if error.code() == KafkaError._ALL_BROKERS_DOWN and not self._reach.answers(error.str()):
            self.all_brokers_down = True
        if error.code() == KafkaError._AUTHENTICATION:
            self.authentication_failure = authentication_reason(error.str())
        if self.started:  # before, the startup check turns it into one clear message
            self._report(error)

    def client_config(self) -> dict[str, Any]:
        return {"error_cb": self, "logger": LibrdkafkaLogger()}

    def unreachable(self, detail: str) -> CommandError:
        """Why the broker cannot be used: it refused our credentials when librdkafka said so
        (a refused login looks like a transport failure to the request that gave up), else it
        is not reachable."""
        if self.authentication_failure is not None:
            return CommandError(
                f"Kafka at {self.bootstrap_servers}: SASL authentication failed "
                f"({self.authentication_failure}) — {CREDENTIALS_HINT}"
            )
        where = "--bootstrap-servers / KAFKA_BOOTSTRAP_SERVERS"
        return CommandError(
            f"Kafka at {self.bootstrap_servers} not reachable ({detail}) — "
            + stack_hint(kafka_hosts(self.bootstrap_servers), f"{where} at your broker")
        )


def topic_partitions(
    client: MetadataClient,
    topic: str,
    watch: BrokerWatch,
    timeout: float = CHECK_TIMEOUT_SECONDS,
) -> list[int]:
    """The partition ids of ``topic``; a ``CommandError`` saying what to do when the broker
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
        raise CommandError(missing_topic_message(topic, watch.bootstrap_servers))
    if error is not None:
        raise CommandError(f"cannot use topic {topic!r}: {error.str()}")
    return sorted(found.partitions)


def authentication_reason(error: str) -> str:
    """The broker's reason in librdkafka's report of a refused SASL login."""
    return _AUTHENTICATION_NOISE.sub("", error) or error


def kafka_hosts(bootstrap_servers: str) -> list[str]:
    return [host for host, _port in split_servers(bootstrap_servers)]


def stack_hint(hosts: list[str], elsewhere: str) -> str:
    """What to do about a server that does not answer: start the local stack when the server
    is meant to be on this machine, else point the option at the right one."""
    if on_loopback(hosts):
        return f"start it with `make stack-up`, or point {elsewhere}"
    return f"check that it runs, or point {elsewhere}"


def missing_topic_message(topic: str, bootstrap_servers: str) -> str:
    missing = f"topic {topic!r} does not exist on Kafka at {bootstrap_servers}"
    create = f"kafka-topics.sh --create --topic {topic} --bootstrap-server {bootstrap_servers}"
    if not on_loopback(kafka_hosts(bootstrap_servers)):
        return f"{missing}: create it with {create}"
    return (
        f"{missing}. "
        "`make stack-up` creates user-login, metric-event and dead-letter-queue on the local "
        f"broker; elsewhere create it with {create}"
    )


def require_topics(kafka: Mapping[str, str], topics: list[str]) -> None:
    """Fail with what to do unless the broker answers and every topic exists. The client lives
    only for the check: processes started afterwards build their own."""
    watch = BrokerWatch(bootstrap_servers(kafka))
    admin = AdminClient({**kafka, **watch.client_config()})
    for topic in topics:
        topic_partitions(admin, topic, watch)
