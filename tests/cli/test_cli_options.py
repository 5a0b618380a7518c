"""What every command shares: environment variables in --help, helpful errors for bad values,
--kafka-config parsing, and secrets that never show."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from loginmetrics.aggregator.settings import AggregatorSettings
from loginmetrics.cli.config import (
    build_kafka_config,
    describe_kafka,
    parse_kafka_config,
    redact_url,
)
from loginmetrics.cli.main import cli
from loginmetrics.cli.options import default
from loginmetrics.window import WindowLayout
from loginmetrics.worker.settings import WorkerSettings

COMMANDS = ["print", "generate", "run", "worker", "aggregate"]
KAFKA_ENV = ["KAFKA_BOOTSTRAP_SERVERS", "KAFKA_SASL_PASSWORD", "LOGINMETRICS_KAFKA_CONFIG"]
ENV_IN_HELP = {
    "print": [
        "LOGINMETRICS_TOPIC",
        "LOGINMETRICS_FROM_BEGINNING",
        "LOGINMETRICS_MAX_MESSAGES",
        "LOGINMETRICS_TIMEOUT",
        "LOGINMETRICS_PRETTY",
        "LOGINMETRICS_TABLE",
    ],
    "generate": [
        "LOGINMETRICS_INPUT_TOPIC",
        "LOGINMETRICS_RATE",
        "LOGINMETRICS_COUNT",
        "LOGINMETRICS_USERS",
        "LOGINMETRICS_INVALID_RATIO",
        "LOGINMETRICS_SEED",
    ],
    "run": [
        "REDIS_URL",
        "LOGINMETRICS_INPUT_TOPIC",
        "LOGINMETRICS_METRICS_TOPIC",
        "LOGINMETRICS_DLQ_TOPIC",
        "LOGINMETRICS_GROUP_ID",
        "LOGINMETRICS_WINDOW",
        "LOGINMETRICS_BUCKET_SECONDS",
        "LOGINMETRICS_REDIS_PREFIX",
        "LOGINMETRICS_EMIT_INTERVAL",
        "LOGINMETRICS_PROCESSES",
        "LOGINMETRICS_BATCH_SIZE",
        "LOGINMETRICS_MAX_MESSAGE_BYTES",
        "LOGINMETRICS_MAX_FIELD_BYTES",
        "LOGINMETRICS_LEASE_SECONDS",
        "LOGINMETRICS_MAX_DISTRIBUTION_VALUES",
    ],
    "worker": [
        "REDIS_URL",
        "LOGINMETRICS_INPUT_TOPIC",
        "LOGINMETRICS_DLQ_TOPIC",
        "LOGINMETRICS_GROUP_ID",
        "LOGINMETRICS_PROCESSES",
        "LOGINMETRICS_BATCH_SIZE",
        "LOGINMETRICS_MAX_MESSAGE_BYTES",
        "LOGINMETRICS_MAX_FIELD_BYTES",
    ],
    "aggregate": [
        "REDIS_URL",
        "LOGINMETRICS_METRICS_TOPIC",
        "LOGINMETRICS_EMIT_INTERVAL",
        "LOGINMETRICS_MAX_DISTRIBUTION_VALUES",
    ],
}
# Options without an environment variable of their own, and why.
NO_ENV = {("generate", "topic"): "an override of --input-topic (LOGINMETRICS_INPUT_TOPIC)"}
SECRET = "hunter2-secret"


@pytest.mark.parametrize("command", COMMANDS)
def test_help_names_the_environment_variables(command: str) -> None:
    result = CliRunner().invoke(cli, [command, "--help"], terminal_width=200)

    assert result.exit_code == 0
    for name in KAFKA_ENV + ENV_IN_HELP[command]:
        assert name in result.output, f"{command} --help does not mention {name}"


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_has_an_environment_variable(command: str) -> None:
    params = cli.commands[command].params

    for param in params:
        if not isinstance(param, click.Option) or param.name == "help":
            continue
        if (command, param.name) in NO_ENV:
            continue
        assert param.envvar, f"{command} {param.opts[0]} has no environment variable"
        assert param.show_envvar


@pytest.mark.parametrize("command", COMMANDS)
def test_help_never_shows_a_secret_from_the_environment(command: str) -> None:
    env = {
        "KAFKA_SASL_PASSWORD": SECRET,
        "REDIS_URL": f"redis://:{SECRET}@redis.example:6379/0",
        "LOGINMETRICS_KAFKA_CONFIG": f"ssl.key.password={SECRET}",
    }

    result = CliRunner().invoke(cli, [command, "--help"], env=env)

    assert result.exit_code == 0
    assert SECRET not in result.output


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["generate", "--rate", "0"], "--rate"),
        (["generate", "--rate", "fast"], "'fast' is not a valid float"),
        (["generate", "--count", "0"], "--count"),
        (["generate", "--users", "0"], "--users"),
        (["generate", "--invalid-ratio", "1.5"], "--invalid-ratio"),
        (["generate", "--seed", "abc"], "--seed"),
        (["print", "--max-messages", "0"], "--max-messages"),
        (["print", "--timeout", "0"], "--timeout"),
        (["print", "--timeout", "soon"], "--timeout"),
        (["run", "--processes", "0"], "--processes"),
        (["run", "--emit-interval", "0"], "--emit-interval"),
        (["run", "--lease-seconds", "0.1"], "--lease-seconds"),
        (["run", "--batch-size", "0"], "--batch-size"),
        (["run", "--max-field-bytes", "0"], "--max-field-bytes"),
        (["run", "--max-distribution-values", "0"], "--max-distribution-values"),
        (["aggregate", "--max-distribution-values", "1001"], "--max-distribution-values"),
        (["worker", "--max-field-bytes", "-1"], "--max-field-bytes"),
        (["run", "--window", "301", "--bucket-seconds", "2"], "multiple"),
        (["worker", "--window", "301", "--bucket-seconds", "2"], "multiple"),
        (["run", "--security-protocol", "TLS"], "--security-protocol"),
        (["print", "--no-such-option"], "No such option"),
    ],
)
def test_bad_values_exit_2_with_a_message_naming_the_problem(
    args: list[str], complaint: str
) -> None:
    result = CliRunner().invoke(cli, args)

    assert result.exit_code == 2, result.output
    assert complaint in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("command", ["print", "generate", "run", "worker", "aggregate"])
def test_kafka_config_must_be_key_value(command: str) -> None:
    result = CliRunner().invoke(cli, [command, "-X", "linger.ms"])

    assert result.exit_code == 2
    assert "'linger.ms' is not KEY=VALUE" in result.output


def test_kafka_config_pairs_become_librdkafka_settings() -> None:
    assert parse_kafka_config(
        ("linger.ms=5", " client.rack = r1", "sasl.oauthbearer.config=a=b")
    ) == {
        "linger.ms": "5",
        "client.rack": " r1",
        "sasl.oauthbearer.config": "a=b",
    }
    config = build_kafka_config(
        "k1:9092,k2:9092", "SASL_SSL", "PLAIN", "me", SECRET, None, ("acks=1",)
    )
    assert config == {
        "bootstrap.servers": "k1:9092,k2:9092",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "PLAIN",
        "sasl.username": "me",
        "sasl.password": SECRET,
        "acks": "1",
    }
    assert SECRET not in describe_kafka(config)


def test_a_redis_password_is_masked() -> None:
    assert redact_url(f"redis://user:{SECRET}@host:6380/2") == "redis://user:***@host:6380/2"
    assert redact_url("redis://localhost:6379/0") == "redis://localhost:6379/0"


def test_a_settings_check_reaches_the_user_as_a_bad_parameter() -> None:
    result = CliRunner().invoke(
        cli, ["worker", "--input-topic", "same", "--dlq-topic", "same"], catch_exceptions=False
    )
    assert result.exit_code == 2
    assert "--dlq-topic must differ from --input-topic" in result.output


def test_every_default_shown_comes_from_the_settings_that_own_it() -> None:
    worker = WorkerSettings(kafka={}, redis_url="redis://x")
    aggregator = AggregatorSettings(kafka={}, redis_url="redis://x")
    help_text = CliRunner().invoke(cli, ["run", "--help"], terminal_width=200).output
    for value in (
        worker.input_topic,
        worker.dlq_topic,
        worker.group_id,
        worker.batch_size,
        worker.max_field_bytes,
        aggregator.metrics_topic,
        aggregator.lease_seconds,
        aggregator.max_distribution_values,
        WindowLayout().window_seconds,
    ):
        assert f"default: {value}" in help_text
    assert default(WindowLayout, "prefix") == WindowLayout().prefix
