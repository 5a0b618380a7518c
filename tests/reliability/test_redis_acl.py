"""Least-privilege Redis: the worker and the aggregator run as a user that may touch only the
window's key prefix with only the commands they use (deploy/redis/loginmetrics.acl, the line
docs/production.md documents); a user missing one of those permissions stops the worker with one
clear error that names it, instead of a retry storm."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from tests.reliability.conftest import LOOPBACK, PrivateRedis, WorkerRun
from tests.reliability.harness import Feeder, wait_for_total
from tests.support import (
    MetricEvents,
    assert_matches,
    current_totals,
    loginmetrics,
    planned_stream,
    truth_of,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

ROOT = Path(__file__).resolve().parents[2]
ACL_FILE = ROOT / "deploy" / "redis" / "loginmetrics.acl"
PASSWORD = "acl-test-password"
EXIT_FATAL = 78


def acl_rules(prefix: str) -> list[str]:
    """The documented ACL line's rules, for ``prefix`` instead of the default one."""
    (line,) = [text for text in ACL_FILE.read_text().splitlines() if text.startswith("user ")]
    _user, _name, *rules = line.split()
    replaced = [f">{PASSWORD}" if rule.startswith(">") else rule for rule in rules]
    return [f"~{prefix}:*" if rule == "~loginmetrics:*" else rule for rule in replaced]


def test_the_docs_give_the_acl_line_the_tests_use() -> None:
    (line,) = [text for text in ACL_FILE.read_text().splitlines() if text.startswith("user ")]
    documented = "ACL SETUSER " + line.removeprefix("user ").replace(">CHANGE-ME", ">PASSWORD")
    assert documented in (ROOT / "docs" / "production.md").read_text()


def create_user(server: PrivateRedis, name: str, rules: list[str]) -> str:
    admin = server.client()
    try:
        admin.acl_setuser(name, reset=True)
        admin.execute_command("ACL", "SETUSER", name, *rules)  # type: ignore[no-untyped-call]
    finally:
        admin.close()
    return f"redis://{name}:{PASSWORD}@{LOOPBACK}:{server.port}/0"


def test_worker_and_aggregator_run_as_the_least_privileged_user(
    local_kafka: str,
    private_redis: PrivateRedis,
    worker_run: Callable[..., WorkerRun],
    new_topic: Callable[..., str],
    tmp_path: Path,
) -> None:
    probe = worker_run(private_redis.url, 2)
    url = create_user(private_redis, "loginmetrics", acl_rules(probe.layout.prefix))
    run = probe._replace(env={**probe.env, "REDIS_URL": url})
    metrics_topic = new_topic(1)
    aggregator_env = {**run.env, "LOGINMETRICS_METRICS_TOPIC": metrics_topic}
    aggregator_env["LOGINMETRICS_EMIT_INTERVAL"] = "1"
    stream = planned_stream(20_000, users=2_000, invalid_every=25)
    restricted = redis.Redis.from_url(url)
    admin = private_redis.client()
    events = MetricEvents(local_kafka, metrics_topic)
    try:
        with (
            loginmetrics("worker", "--processes", "1", env=run.env, log=run.log),
            loginmetrics("aggregate", env=aggregator_env, log=tmp_path / "aggregator.log"),
            Feeder(local_kafka, run.source, stream) as feeder,
        ):
            feeder.wait_finished(60)
            produced = feeder.stop()
            totals = wait_for_total(admin, run.layout, produced, timeout=60, log=run.log)
            events.wait_for(lambda: len(events.events) >= 2, 30, "metric events")
        assert_matches(totals, truth_of(feeder.produced_messages))
        # Everything the pipeline wrote is under its prefix.
        prefix = f"{run.layout.prefix}:".encode()
        assert all(bytes(key).startswith(prefix) for key in admin.scan_iter())
        with pytest.raises(redis.exceptions.NoPermissionError):
            restricted.set("outside-the-prefix", "1")
        assert current_totals(admin, run.layout).total_messages == produced
    finally:
        events.close()
        restricted.close()
        admin.close()


def test_a_missing_permission_stops_the_worker_with_one_clear_error(
    local_kafka: str,
    private_redis: PrivateRedis,
    worker_run: Callable[..., WorkerRun],
) -> None:
    probe = worker_run(private_redis.url, 1)
    rules = [rule for rule in acl_rules(probe.layout.prefix) if rule not in ("+evalsha", "+eval")]
    url = create_user(private_redis, "no-scripts", rules)
    env = {**probe.env, "REDIS_URL": url}
    with Feeder(local_kafka, probe.source, planned_stream(100, users=10)) as feeder:
        feeder.wait_finished(30)
    result = subprocess.run(
        [sys.executable, "-m", "loginmetrics", "worker", "--processes", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == EXIT_FATAL, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if " ERROR " in line]
    assert any("NOPERM" in line and "evalsha" in line.lower() for line in errors), errors
    assert PASSWORD not in result.stderr
    assert result.stderr.count("restarting in") == 0, "a refused permission is not retried"
