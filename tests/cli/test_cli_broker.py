"""The Kafka startup check: a login the broker refuses is reported once, as an authentication
failure with what to check, not as an unreachable broker."""

from __future__ import annotations

from typing import Any

import click
import pytest
from confluent_kafka import KafkaError, KafkaException

from loginmetrics.cli.broker import BrokerWatch, authentication_reason, topic_partitions

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
    watch = BrokerWatch(BOOTSTRAP)
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
