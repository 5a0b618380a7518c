"""`loginmetrics generate` against a stand-in producer: what it sends, where, and its summary."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from click.testing import CliRunner
from confluent_kafka import KafkaError

from loginmetrics.cli import generate_command
from loginmetrics.cli.logs import LogSettings
from loginmetrics.cli.main import cli
from loginmetrics.worker.validation import LoginEvent, validate


@dataclass
class FakeProducer:
    config: dict[str, Any]
    sent: list[tuple[str, bytes, bytes]] = field(default_factory=list)
    fail_on_flush: int = 0

    def produce(self, topic: str, value: bytes, key: bytes) -> None:
        self.sent.append((topic, key, value))

    def poll(self, timeout: float = 0) -> int:
        return 0

    def flush(self, timeout: float = 0) -> int:
        for _ in range(self.fail_on_flush):
            self.config["on_delivery"](KafkaError(KafkaError._MSG_TIMED_OUT), None)
        self.fail_on_flush = 0
        return 0

    def __len__(self) -> int:
        return 0


@pytest.fixture
def producers(monkeypatch: pytest.MonkeyPatch) -> list[FakeProducer]:
    made: list[FakeProducer] = []

    def make(config: dict[str, Any]) -> FakeProducer:
        made.append(FakeProducer(config))
        return made[-1]

    monkeypatch.setattr(generate_command, "Producer", make)
    monkeypatch.setattr(generate_command, "topic_partitions", lambda *_args: [0, 1, 2, 3])
    monkeypatch.setattr(LogSettings, "configure", lambda self: None)
    return made


def test_count_produces_that_many_keyed_by_user_and_sums_up(
    producers: list[FakeProducer],
) -> None:
    result = CliRunner().invoke(cli, ["generate", "--count", "2500", "--seed", "1"])

    assert result.exit_code == 0, result.output
    (producer,) = producers
    assert len(producer.sent) == 2_500
    for topic, key, value in producer.sent:
        assert topic == "user-login"
        assert key == json.loads(value)["user_id"].encode()
    assert "2,500 messages in" in result.stderr
    assert "msg/s)" in result.stderr


def test_the_same_seed_sends_the_same_users(producers: list[FakeProducer]) -> None:
    for _ in range(2):
        result = CliRunner().invoke(cli, ["generate", "--count", "300", "--seed", "7"])
        assert result.exit_code == 0, result.output

    first, second = ([key for _, key, _ in p.sent] for p in producers)
    assert first == second


def test_topic_users_and_invalid_ratio_shape_the_stream(producers: list[FakeProducer]) -> None:
    args = ["generate", "--topic", "load", "--count", "3000", "--users", "20"]
    result = CliRunner().invoke(cli, [*args, "--invalid-ratio", "0.5", "--seed", "3"])

    assert result.exit_code == 0, result.output
    (producer,) = producers
    assert {topic for topic, _, _ in producer.sent} == {"load"}
    assert len({key for _, key, _ in producer.sent}) == 20
    valid = sum(isinstance(validate(value), LoginEvent) for *_, value in producer.sent)
    # Half deliberately invalid; 5 % of the other half without device_type.
    assert valid / 3000 == pytest.approx(0.5 * 0.95, abs=0.04)


def test_input_topic_from_the_environment_is_the_default_topic(
    producers: list[FakeProducer],
) -> None:
    env = {"LOGINMETRICS_INPUT_TOPIC": "logins-env", "LOGINMETRICS_COUNT": "5"}

    result = CliRunner().invoke(cli, ["generate"], env=env)

    assert result.exit_code == 0, result.output
    assert {topic for topic, _, _ in producers[0].sent} == {"logins-env"}


def test_kafka_config_reaches_the_producer_and_may_tune_it(
    producers: list[FakeProducer],
) -> None:
    args = ["generate", "--count", "1", "-X", "linger.ms=5", "--kafka-config", "client.rack=r1"]

    result = CliRunner().invoke(cli, [*args, "--bootstrap-servers", "k1:9092,k2:9092"])

    assert result.exit_code == 0, result.output
    config = producers[0].config
    assert config["bootstrap.servers"] == "k1:9092,k2:9092"
    assert config["linger.ms"] == "5"
    assert config["client.rack"] == "r1"
    assert config["compression.type"] == "lz4"


@pytest.mark.parametrize(
    "setting",
    [
        "acks=1\nlinger.ms=7\nsasl.oauthbearer.config=principal=a extension_b=c\n",
        "  acks=1;linger.ms=7 ; sasl.oauthbearer.config=principal=a extension_b=c;",
    ],
    ids=["one-per-line", "semicolons"],
)
def test_kafka_config_from_the_environment_is_newline_or_semicolon_separated(
    producers: list[FakeProducer], setting: str
) -> None:
    # Values keep their spaces: click's own splitting of the variable, on whitespace, would not.
    result = CliRunner().invoke(
        cli, ["generate", "--count", "1"], env={"LOGINMETRICS_KAFKA_CONFIG": setting}
    )

    assert result.exit_code == 0, result.output
    assert producers[0].config["acks"] == "1"
    assert producers[0].config["linger.ms"] == "7"
    assert producers[0].config["sasl.oauthbearer.config"] == "principal=a extension_b=c"


def test_undelivered_messages_fail_the_run(
    producers: list[FakeProducer], monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing(config: dict[str, Any]) -> FakeProducer:
        producers.append(FakeProducer(config, fail_on_flush=3))
        return producers[-1]

    monkeypatch.setattr(generate_command, "Producer", failing)

    result = CliRunner().invoke(cli, ["generate", "--count", "10"])

    assert result.exit_code == 1
    assert "7 messages in" in result.stderr
    assert "3 messages were not delivered" in result.stderr
    assert "timed out" in result.stderr


def test_startup_log_names_topic_and_broker_without_secrets(
    producers: list[FakeProducer], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO")

    result = CliRunner().invoke(
        cli, ["generate", "--count", "1", "--sasl-password", "hunter2"], catch_exceptions=False
    )

    assert result.exit_code == 0
    assert "producing to user-login" in caplog.text
    assert "bootstrap.servers=localhost:9092" in caplog.text
    assert "sasl.password=***" in caplog.text
    assert "hunter2" not in caplog.text + result.output


def test_due_keeps_the_rate_since_the_start() -> None:
    run = generate_command.Run(started=100.0)

    assert generate_command._due(run, 2.0, now=100.0) == 1
    run.produced = 1
    assert generate_command._due(run, 2.0, now=100.2) == 0
    assert generate_command._due(run, 2.0, now=101.0) == 2
    assert generate_command._due(run, 1e9, now=101.0) == generate_command.CHUNK


def test_an_unreachable_broker_is_named_with_what_to_do() -> None:
    result = CliRunner().invoke(cli, ["generate", "--bootstrap-servers", "127.0.0.1:1"])

    assert result.exit_code == 1
    assert "Kafka at 127.0.0.1:1 not reachable" in result.output
    assert "make stack-up" in result.output
