"""``loginmetrics aggregate``: options, environment variables, validation and the startup line."""

from __future__ import annotations

import logging
import pickle

import click
import pytest
from click.testing import CliRunner

from loginmetrics.aggregator.settings import AggregatorSettings
from loginmetrics.cli import aggregate_command, options
from loginmetrics.cli.logs import LogSettings
from loginmetrics.cli.main import cli
from loginmetrics.runtime.errors import ConfigError
from loginmetrics.window import WindowLayout
from loginmetrics.window.errors import WindowConfigError


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[AggregatorSettings]:
    """Runs the command without starting the aggregator; collects the settings it got."""
    runs: list[AggregatorSettings] = []

    def fake_run(settings: AggregatorSettings, _probe: object = None, _api: object = None) -> int:
        runs.append(settings)
        return 0

    monkeypatch.setattr(aggregate_command, "run_aggregator_in_foreground", fake_run)
    # No broker or Redis here: the startup checks are tested with `run`'s.
    monkeypatch.setattr(aggregate_command, "require_topics", lambda _kafka, _topics: None)
    monkeypatch.setattr(aggregate_command, "require_redis", lambda _url, _sentinel: None)
    # The group configures the root logger; keep pytest's capture handler in place instead.
    monkeypatch.setattr(LogSettings, "configure", lambda self: None)
    return runs


def test_help_names_every_option_and_its_environment_variable() -> None:
    result = CliRunner().invoke(cli, ["aggregate", "--help"])

    assert result.exit_code == 0
    for text in (
        "--emit-interval",
        "LOGINMETRICS_EMIT_INTERVAL",
        "--lease-seconds",
        "LOGINMETRICS_LEASE_SECONDS",
        "--metrics-topic",
        "--window",
        "--redis-url",
        "--bootstrap-servers",
        "at most once",
    ):
        assert text in result.output


def test_options_come_from_the_environment(started: list[AggregatorSettings]) -> None:
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:19092",
        "REDIS_URL": "redis://127.0.0.1:6379/3",
        "LOGINMETRICS_WINDOW": "60",
        "LOGINMETRICS_BUCKET_SECONDS": "2",
        "LOGINMETRICS_REDIS_PREFIX": "env-prefix",
        "LOGINMETRICS_METRICS_TOPIC": "metrics-env",
        "LOGINMETRICS_EMIT_INTERVAL": "2.5",
        "LOGINMETRICS_LEASE_SECONDS": "6",
    }

    result = CliRunner().invoke(cli, ["aggregate"], env=env)

    assert result.exit_code == 0, result.output
    (settings,) = started
    assert settings.kafka["bootstrap.servers"] == "127.0.0.1:19092"
    assert settings.redis_url == "redis://127.0.0.1:6379/3"
    assert settings.layout == WindowLayout(prefix="env-prefix", bucket_seconds=2, window_seconds=60)
    assert settings.metrics_topic == "metrics-env"
    assert settings.emit_interval_seconds == 2.5
    assert settings.lease_seconds == 6.0


def test_defaults_follow_the_spec(started: list[AggregatorSettings]) -> None:
    result = CliRunner().invoke(cli, ["aggregate"], env={"REDIS_URL": None})

    assert result.exit_code == 0, result.output
    (settings,) = started
    assert settings.metrics_topic == "metric-event"
    assert settings.emit_interval_seconds == 10.0
    assert settings.layout.window_seconds == 300
    assert settings.lease_seconds == 15.0


@pytest.mark.parametrize(
    "arguments",
    [
        ["--emit-interval", "0"],
        ["--lease-seconds", "0.5"],
        ["--window", "7", "--bucket-seconds", "2"],
    ],
)
def test_bad_values_are_refused_with_the_option_name(
    started: list[AggregatorSettings], arguments: list[str]
) -> None:
    result = CliRunner().invoke(cli, ["aggregate", *arguments])

    assert result.exit_code == 2
    assert arguments[0] in result.output or "--window" in result.output
    assert started == []


def test_startup_line_masks_secrets(
    started: list[AggregatorSettings], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="loginmetrics.cli.aggregate_command"):
        result = CliRunner().invoke(
            cli,
            [
                "aggregate",
                "--redis-url",
                "redis://:hunter2@127.0.0.1:6379/0",
                "--sasl-password",
                "kafka-secret",
                "--window",
                "60",
                "--emit-interval",
                "5",
            ],
        )

    assert result.exit_code == 0, result.output
    assert "hunter2" not in caplog.text
    assert "kafka-secret" not in caplog.text
    assert "redis://:***@127.0.0.1:6379/0" in caplog.text
    assert "window 60 s" in caplog.text
    assert "every 5 s to metric-event" in caplog.text
    assert "bootstrap.servers=localhost:9092" in caplog.text


def test_settings_refuse_a_non_positive_emit_interval() -> None:
    with pytest.raises(WindowConfigError, match="--emit-interval"):
        AggregatorSettings(kafka={}, redis_url="redis://x", emit_interval_seconds=0)


def test_settings_refuse_a_too_short_lease() -> None:
    with pytest.raises(ConfigError, match="--lease-seconds"):
        AggregatorSettings(kafka={}, redis_url="redis://x", lease_seconds=0.2)


def test_aggregator_settings_turn_config_errors_into_bad_parameters() -> None:
    @options.aggregator_settings
    def command(**_values: object) -> None:
        raise AssertionError("not reached: the settings check fails first")

    values: dict[str, object] = {"kafka": {}, "redis_url": "redis://x", "redis_sentinel": None}
    with pytest.raises(click.BadParameter, match="--metrics-topic"):
        command(
            **values,
            layout=WindowLayout(),
            input_topic="user-login",
            metrics_topic="",
            emit_interval=10.0,
            lease_seconds=15.0,
            max_distribution_values=100,
            windows=(),
        )


def test_settings_survive_the_trip_to_a_spawned_child() -> None:
    settings = AggregatorSettings(
        kafka={"bootstrap.servers": "127.0.0.1:9092"},
        redis_url="redis://127.0.0.1:6379/0",
        layout=WindowLayout(prefix="p", window_seconds=60),
        lease_seconds=6.0,
    )

    assert pickle.loads(pickle.dumps(settings)) == settings
