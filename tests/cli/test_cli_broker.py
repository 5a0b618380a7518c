"""The Kafka startup check: a login the broker refuses is reported once, as an authentication
failure with what to check, not as an unreachable broker; a broker is unreachable only when no
address of it answers."""

from __future__ import annotations

import socket
from typing import Any

import click
import pytest
from confluent_kafka import KafkaError, KafkaException

from loginmetrics.cli.broker import BrokerWatch, authentication_reason, topic_partitions
from loginmetrics.runtime.kafka_logging import KafkaReach

BOOTSTRAP = "127.0.0.1:9092"
REFUSED = (
    f"sasl_plaintext://{BOOTSTRAP}/bootstrap: SASL authentication error: Authentication failed "
    "during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512 "
    "(after 312ms in state AUTH_REQ)"
)


class FailingClient:
    """A client whose metadata requests all fail, and whose poll serves ``errors`` to the
    watch, as librdkafka does with the errors it queued meanwhile."""

    def __init__(self, watch: BrokerWatch, errors: list[KafkaError]) -> None:
        self.watch = watch
        self.errors = errors
        self.requests = 0

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> Any:
        self.requests += 1
        raise KafkaException(KafkaError(KafkaError._TRANSPORT, "Failed to get metadata"))

    def poll(self, timeout: float = -1) -> Any:
        for error in self.errors:
            self.watch(error)
        self.errors = []


def check(errors: list[KafkaError]) -> tuple[str, int]:
    """The startup check's message against a client that fails with ``errors``, and how many
    metadata requests it made."""
    # No address of the broker answers (whatever runs on this machine).
    watch = BrokerWatch(BOOTSTRAP, KafkaReach(BOOTSTRAP, resolve=lambda _host, _port: []))
    client = FailingClient(watch, errors)
    with pytest.raises(click.ClickException) as raised:
        topic_partitions(client, "user-login", watch)
    return raised.value.message, client.requests


def test_the_brokers_reason_is_kept_without_librdkafkas_wording() -> None:
    assert authentication_reason(REFUSED) == (
        "Authentication failed during authentication due to invalid credentials with SASL "
        "mechanism SCRAM-SHA-512"
    )
    unsupported = (
        f"sasl_plaintext://{BOOTSTRAP}/bootstrap: SASL PLAIN mechanism handshake failed: Broker: "
        "Unsupported SASL mechanism: broker's supported mechanisms: SCRAM-SHA-512"
    )
    assert authentication_reason(unsupported) == unsupported.split("bootstrap: ", 1)[1]
    assert authentication_reason("something else") == "something else"


def test_a_refused_login_is_one_authentication_failure_with_what_to_check() -> None:
    message, requests = check(
        [
            KafkaError(KafkaError._AUTHENTICATION, REFUSED),
            KafkaError(KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down"),
        ]
    )

    assert message == (
        f"Kafka at {BOOTSTRAP}: SASL authentication failed (Authentication failed during "
        "authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512) — check "
        "--sasl-username / KAFKA_SASL_USERNAME, the password in KAFKA_SASL_PASSWORD and "
        "--sasl-mechanism / KAFKA_SASL_MECHANISM (the broker must enable that mechanism for the "
        "user)"
    )
    assert requests == 1


def test_a_refused_login_ends_the_check_before_every_broker_is_down() -> None:
    # One broker of several refused us so far: no point waiting for the check's deadline.
    message, requests = check([KafkaError(KafkaError._AUTHENTICATION, REFUSED)])

    assert "SASL authentication failed" in message
    assert "not reachable" not in message
    assert requests == 1


def test_a_broker_that_is_down_is_still_reported_unreachable() -> None:
    message, requests = check([KafkaError(KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down")])

    assert message.startswith(f"Kafka at {BOOTSTRAP} not reachable (Failed to get metadata)")
    assert "make stack-up" in message
    assert "authentication" not in message
    assert requests == 1


class SlowClient(FailingClient):
    """A client whose first metadata request fails (librdkafka tried ::1 first), the next
    one answers."""

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> Any:
        if self.requests == 0:
            return super().list_topics(topic, timeout)
        self.requests += 1
        partitions = {0: object(), 1: object()}
        found = type("Topic", (), {"error": None, "partitions": partitions})()
        return type("Metadata", (), {"topics": {topic: found}})()


def test_all_brokers_down_while_another_address_answers_is_waited_out() -> None:
    # librdkafka says "1/1 brokers are down" as soon as localhost's ::1 refuses; 127.0.0.1
    # answers (a listener of this test's, whatever this machine's hosts file says).
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        resolve = lambda _host, _port: [(socket.AF_INET, ("127.0.0.1", port))]  # noqa: E731
        watch = BrokerWatch("localhost:9092", KafkaReach("localhost:9092", resolve=resolve))
        down = KafkaError(KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down")
        client = SlowClient(watch, [down])

        assert topic_partitions(client, "user-login", watch) == [0, 1]
    assert client.requests == 2


def test_a_remote_broker_gets_no_local_stack_hint() -> None:
    bootstrap = "kafka-1.example.internal:9092"
    watch = BrokerWatch(bootstrap, KafkaReach(bootstrap, resolve=lambda _host, _port: []))
    message = watch.unreachable("Failed to get metadata").message

    assert message.startswith(f"Kafka at {bootstrap} not reachable")
    assert "make stack-up" not in message
    assert "KAFKA_BOOTSTRAP_SERVERS" in message
