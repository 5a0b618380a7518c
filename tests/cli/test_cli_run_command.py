"""`loginmetrics run`: workers and the aggregator under one supervisor, configured once."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import dataclass, field

import click
import pytest
from click.testing import CliRunner

from loginmetrics.aggregator.process import run_aggregator_process
from loginmetrics.aggregator.settings import AggregatorSettings
from loginmetrics.cli import preflight, run_command
from loginmetrics.cli.logs import LogSettings
from loginmetrics.cli.main import cli
from loginmetrics.runtime.supervisor import ChildSpec
from loginmetrics.window import WindowLayout
from loginmetrics.worker.process import run_worker_process
from loginmetrics.worker.settings import WorkerSettings

SECRET = "hunter2-secret"


@dataclass
class FakeSupervisor:
    specs: list[ChildSpec]
    initializer: Callable[[], None] | None
    exit_code: int = 0
    checks: list[str] = field(default_factory=list)

    def run(self) -> int:
        return self.exit_code


@pytest.fixture
def supervised(monkeypatch: pytest.MonkeyPatch) -> list[FakeSupervisor]:
    """Runs `run` without processes, Kafka or Redis; collects the supervisors it built."""
    made: list[FakeSupervisor] = []
    checks: list[str] = []

    def make(
        specs: list[ChildSpec], initializer: Callable[[], None] | None, **_options: object
    ) -> FakeSupervisor:
        made.append(FakeSupervisor(specs, initializer, checks=checks))
        return made[-1]

    monkeypatch.setattr(run_command, "Supervisor", make)
    monkeypatch.setattr(run_command, "require_topics", lambda _kafka, topics: checks.extend(topics))
    monkeypatch.setattr(run_command, "require_redis", lambda url, _sentinel: checks.append(url))
    monkeypatch.setattr(LogSettings, "configure", lambda self: None)
    return made


def test_starts_the_workers_and_one_aggregator_with_shared_settings(
    supervised: list[FakeSupervisor],
) -> None:
    args = ["run", "--processes", "3", "--window", "60", "--bucket-seconds", "2"]
    args += ["--emit-interval", "5", "--redis-prefix", "p", "--batch-size", "500"]
    args += ["--http-port", "8123", "--history", "3600"]

    result = CliRunner().invoke(cli, args, env={"LOGINMETRICS_GROUP_ID": "g1"})

    assert result.exit_code == 0, result.output
    (supervisor,) = supervised
    names = [spec.name for spec in supervisor.specs]
    assert names == [
        "loginmetrics-worker-0",
        "loginmetrics-worker-1",
        "loginmetrics-worker-2",
        "loginmetrics-aggregator",
    ]
    layout = WindowLayout(prefix="p", bucket_seconds=2, window_seconds=60)
    worker_spec, aggregator_spec = supervisor.specs[0], supervisor.specs[-1]
    assert worker_spec.target is run_worker_process
    worker = worker_spec.args[0]
    assert isinstance(worker, WorkerSettings)
    assert (worker.layout, worker.group_id, worker.batch_size) == (layout, "g1", 500)
    assert aggregator_spec.target is run_aggregator_process
    aggregator, api = aggregator_spec.args
    assert isinstance(aggregator, AggregatorSettings)
    assert (api.port, api.history_seconds) == (8123, 3600)
    assert api.partition_source is not None, "the API's status knows the topic and group"
    assert (aggregator.layout, aggregator.emit_interval_seconds) == (layout, 5.0)
    assert aggregator.metrics_topic == "metric-event"
    # Children are spawned: what they get must pickle.
    pickle.dumps(supervisor.specs)
    assert supervisor.initializer is not None


def test_checks_topics_and_redis_before_starting_anything(
    supervised: list[FakeSupervisor],
) -> None:
    args = ["run", "--input-topic", "in", "--dlq-topic", "dlq", "--metrics-topic", "out"]

    result = CliRunner().invoke(cli, [*args, "--redis-url", "redis://r:6379/1"])

    assert result.exit_code == 0, result.output
    assert supervised[0].checks == ["in", "dlq", "out", "redis://r:6379/1"]


def test_the_supervisors_exit_code_is_the_commands(
    supervised: list[FakeSupervisor], monkeypatch: pytest.MonkeyPatch
) -> None:
    def forced(
        specs: list[ChildSpec], initializer: Callable[[], None] | None, **_options: object
    ) -> FakeSupervisor:
        return FakeSupervisor(specs, initializer, exit_code=130)

    monkeypatch.setattr(run_command, "Supervisor", forced)

    result = CliRunner().invoke(cli, ["run"])

    assert result.exit_code == 130


def test_startup_logs_name_broker_redis_topics_and_group_but_no_secret(
    supervised: list[FakeSupervisor], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO")
    env = {"KAFKA_SASL_PASSWORD": SECRET, "REDIS_URL": f"redis://:{SECRET}@redis.example:6379/0"}

    result = CliRunner().invoke(cli, ["run", "--group-id", "g2"], env=env)

    assert result.exit_code == 0, result.output
    for text in (
        "bootstrap.servers=localhost:9092",
        "redis://:***@redis.example:6379/0",
        "user-login",
        "dead-letter-queue",
        "metric-event",
        "group g2",
        "sasl.password=***",
    ):
        assert text in caplog.text
    assert SECRET not in caplog.text + result.output
    # ... while the processes get the real credentials.
    worker = supervised[0].specs[0].args[0]
    assert worker.kafka["sasl.password"] == SECRET


def test_an_unreachable_redis_is_named_redacted_with_what_to_do() -> None:
    with pytest.raises(click.ClickException, match="not reachable") as caught:
        preflight.require_redis(f"redis://:{SECRET}@127.0.0.1:1/0")

    message = str(caught.value)
    assert "redis://:***@127.0.0.1:1/0" in message
    assert "make stack-up" in message
    assert SECRET not in message


def test_an_unreachable_broker_stops_run_before_any_process_starts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(LogSettings, "configure", lambda self: None)
    monkeypatch.setattr(run_command, "Supervisor", pytest.fail)

    result = CliRunner().invoke(cli, ["run", "--bootstrap-servers", "127.0.0.1:1"])

    assert result.exit_code == 1
    assert "Kafka at 127.0.0.1:1 not reachable" in result.output
