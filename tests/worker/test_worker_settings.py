"""Worker settings: the client config the guarantees rest on, and safe transfer to children."""

from __future__ import annotations

import dataclasses
import pickle

import pytest

from loginmetrics.runtime.errors import ConfigError
from loginmetrics.window import WindowLayout
from loginmetrics.worker.settings import WorkerSettings

KAFKA = {
    "bootstrap.servers": "broker-1:9092,broker-2:9092",
    "security.protocol": "SASL_SSL",
    "sasl.mechanism": "PLAIN",
    "sasl.username": "svc",
    "sasl.password": "hunter2",
}


def settings(**changes: object) -> WorkerSettings:
    return WorkerSettings(kafka=KAFKA, redis_url="redis://cache:6379/0", **changes)  # type: ignore[arg-type]


def test_the_consumer_never_commits_on_its_own() -> None:
    # Offsets are committed only after the batch is in the window (spec 4: no commit for work
    # not applied); auto commit would commit what was merely polled.
    config = settings(group_id="metrics-eu").consumer_config()
    assert config["enable.auto.commit"] is False
    assert config["group.id"] == "metrics-eu"


def test_without_any_stored_position_the_consumer_starts_at_the_oldest_message() -> None:
    assert settings().consumer_config()["auto.offset.reset"] == "earliest"


def test_security_settings_reach_both_clients() -> None:
    for config in (settings().consumer_config(), settings().dlq_producer_config()):
        for key, value in KAFKA.items():
            assert config[key] == value


def test_the_dead_letter_producer_is_idempotent_and_waits_for_all_replicas() -> None:
    config = settings().dlq_producer_config()
    assert config["enable.idempotence"] is True
    assert config["acks"] == "all"


def test_operator_settings_cannot_switch_off_what_exactly_once_relies_on() -> None:
    risky = {
        **KAFKA,
        "enable.auto.commit": "true",
        "group.id": "someone-else",
        "enable.idempotence": "false",
        "acks": "1",
        "auto.offset.reset": "latest",
    }
    tuned = WorkerSettings(kafka=risky, redis_url="redis://cache:6379/0")
    consumer = tuned.consumer_config()
    assert consumer["enable.auto.commit"] is False
    assert consumer["group.id"] == "loginmetrics"
    assert consumer["auto.offset.reset"] == "latest"  # a tuning choice, theirs to make
    producer = tuned.dlq_producer_config()
    assert (producer["enable.idempotence"], producer["acks"]) == (True, "all")


def test_the_defaults_are_the_topics_and_group_of_the_spec() -> None:
    default = settings()
    assert (default.input_topic, default.dlq_topic, default.group_id) == (
        "user-login",
        "dead-letter-queue",
        "loginmetrics",
    )
    assert default.layout == WindowLayout()


def test_settings_survive_the_trip_to_a_child_process() -> None:
    original = settings(layout=WindowLayout(prefix="eu", bucket_seconds=5, window_seconds=60))
    assert pickle.loads(pickle.dumps(original)) == original


def test_settings_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings().group_id = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"input_topic": " "}, "--input-topic"),
        ({"dlq_topic": ""}, "--dlq-topic"),
        ({"dlq_topic": "user-login"}, "must differ"),
        ({"batch_size": 0}, "--batch-size"),
        ({"max_message_bytes": 0}, "--max-message-bytes"),
        ({"max_field_bytes": 0}, "--max-field-bytes"),
    ],
)
def test_settings_check_themselves(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        settings(**changes)
