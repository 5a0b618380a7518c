"""Group membership settings: a static member id per pool slot under the classic protocol, none
under KIP-848's consumer protocol, and configurations librdkafka itself accepts."""

from __future__ import annotations

import os
import socket

import pytest
from confluent_kafka import Consumer, KafkaException

from loginmetrics.worker.settings import WorkerSettings

# Nothing listens here: building a consumer validates its settings without connecting.
NOWHERE = {"bootstrap.servers": "127.0.0.1:1"}


def settings(**kafka: str) -> WorkerSettings:
    return WorkerSettings(kafka={**NOWHERE, **kafka}, redis_url="redis://x", group_id="eu")


def accepted_by_librdkafka(config: dict[str, str | int | bool]) -> bool:
    Consumer(config).close()  # raises KafkaException on a setting it refuses
    return True


def test_each_pool_slot_is_a_static_member_with_an_id_that_survives_a_restart() -> None:
    pool = f"eu-{socket.gethostname()}-{os.getppid()}"
    first, second = settings().consumer_config(0), settings().consumer_config(1)
    assert first["group.instance.id"] == f"{pool}-0"
    assert second["group.instance.id"] == f"{pool}-1"
    # A child started again in slot 0 (same supervisor, same host) asks for the same id.
    assert settings().consumer_config(0)["group.instance.id"] == first["group.instance.id"]
    assert first["partition.assignment.strategy"] == "cooperative-sticky"
    assert accepted_by_librdkafka(first)


def test_a_consumer_outside_a_pool_is_a_dynamic_member() -> None:
    assert "group.instance.id" not in settings().consumer_config()


def test_the_operator_names_the_pool_or_switches_static_membership_off() -> None:
    named = settings(**{"group.instance.id": "eu-host-a"}).consumer_config(2)
    assert named["group.instance.id"] == "eu-host-a-2"
    off = settings(**{"group.instance.id": ""}).consumer_config(2)
    assert "group.instance.id" not in off
    assert accepted_by_librdkafka(off)


def test_the_consumer_protocol_drops_the_settings_the_broker_owns_and_stays_dynamic() -> None:
    config = settings(**{"group.protocol": "consumer"}).consumer_config(0)
    assert config["group.protocol"] == "consumer"
    for classic_only in ("session.timeout.ms", "heartbeat.interval.ms"):
        assert classic_only not in config
    assert "partition.assignment.strategy" not in config
    # KIP-848 refuses a new member while the id of a killed one is still in the group.
    assert "group.instance.id" not in config
    assert config["enable.auto.commit"] is False
    assert accepted_by_librdkafka(config)


def test_librdkafka_refuses_classic_settings_under_the_consumer_protocol() -> None:
    # Why consumer_config leaves them out: with them the consumer is not even built.
    config = {**settings().consumer_config(), "group.protocol": "consumer"}
    with pytest.raises(KafkaException, match=r"session\.timeout\.ms|partition\.assignment"):
        Consumer(config).close()


def test_group_settings_stay_out_of_the_dead_letter_producer() -> None:
    tuned = settings(**{"group.protocol": "consumer", "group.instance.id": "eu-a"})
    producer = tuned.dlq_producer_config()
    assert "group.protocol" not in producer
    assert "group.instance.id" not in producer
    assert producer["bootstrap.servers"] == NOWHERE["bootstrap.servers"]
