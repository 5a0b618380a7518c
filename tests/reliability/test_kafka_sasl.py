"""Authenticated Kafka: a private broker whose only listener takes SCRAM-SHA-512 logins over
SASL_PLAINTEXT (stack/kafka.sh with KAFKA_SASL=1). Topics, worker, aggregator and the test's own
clients log in and the totals are exact; a wrong password stops each command at startup with one
clear message that never shows the password."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from confluent_kafka import Consumer

from loginmetrics.window import WindowLayout
from tests.reliability.conftest import PrivateKafka
from tests.reliability.harness import Feeder, wait_for_total
from tests.support import (
    assert_matches,
    loginmetrics,
    pipeline_env,
    planned_stream,
    topic_reader,
    truth_of,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

USER = "loginmetrics"
PASSWORD = f"sasl-{uuid.uuid4().hex}"
WRONG_PASSWORD = f"wrong-{uuid.uuid4().hex}"
# How every `loginmetrics` command logs in; the password comes from KAFKA_SASL_PASSWORD.
LOGIN = (
    "--security-protocol",
    "SASL_PLAINTEXT",
    "--sasl-mechanism",
    "SCRAM-SHA-512",
    "--sasl-username",
    USER,
)
# The same login for the test's own producer and consumers.
CLIENT_LOGIN = {
    "security.protocol": "SASL_PLAINTEXT",
    "sasl.mechanism": "SCRAM-SHA-512",
    "sasl.username": USER,
    "sasl.password": PASSWORD,
}


class SaslKafka(PrivateKafka):
    """A private broker with a SASL_PLAINTEXT listener and one SCRAM-SHA-512 user, ``USER``."""

    def __init__(self, state: Path) -> None:
        super().__init__(state)
        self._env |= {"KAFKA_SASL": "1", "KAFKA_SASL_USERS": f"{USER}:{PASSWORD}"}


@pytest.fixture(scope="module")
def sasl_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SaslKafka]:
    broker = SaslKafka(tmp_path_factory.mktemp("sasl") / "kafka")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def run(*args: str, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "loginmetrics", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def read_until(
    consumer: Consumer, done: Callable[[list[dict[str, Any]]], bool], timeout: float, what: str
) -> list[dict[str, Any]]:
    """The JSON messages ``consumer`` reads until ``done`` says they are enough."""
    messages: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while not done(messages):
        assert time.monotonic() < deadline, f"timed out waiting for {what}: {messages[-3:]}"
        for message in consumer.consume(1000, 0.2):
            assert message.error() is None, message.error()
            messages.append(json.loads(message.value() or b"{}"))
    return messages


def test_the_whole_pipeline_runs_authenticated(
    sasl_kafka: SaslKafka,
    local_redis_url: str,
    redis_prefix: str,
    unique_group_id: str,
    tmp_path: Path,
) -> None:
    source, metrics, dlq = (f"test-{uuid.uuid4().hex}" for _ in range(3))
    env = pipeline_env(
        sasl_kafka.bootstrap,
        local_redis_url,
        redis_prefix,
        input_topic=source,
        metrics_topic=metrics,
        dlq_topic=dlq,
        group_id=unique_group_id,
        emit_interval=1,
    )
    env["KAFKA_SASL_PASSWORD"] = PASSWORD
    created = run("topics", "create", "--partitions", "2", *LOGIN, env=env, timeout=60)
    assert created.returncode == 0, created.stderr[-3000:]

    stream = planned_stream(20_000, users=2_000, invalid_every=25)
    layout = WindowLayout(prefix=redis_prefix)
    client = redis.Redis.from_url(local_redis_url)
    events = topic_reader(sasl_kafka.bootstrap, metrics, config=CLIENT_LOGIN)
    letters = topic_reader(sasl_kafka.bootstrap, dlq, config=CLIENT_LOGIN)
    worker_log, aggregator_log = tmp_path / "worker.log", tmp_path / "aggregator.log"
    try:
        with (
            loginmetrics("worker", "--processes", "1", *LOGIN, env=env, log=worker_log),
            loginmetrics("aggregate", *LOGIN, env=env, log=aggregator_log),
            Feeder(sasl_kafka.bootstrap, source, stream, config=CLIENT_LOGIN) as feeder,
        ):
            feeder.wait_finished(45)
            produced = feeder.stop()
            totals = wait_for_total(client, layout, produced, timeout=45, log=worker_log)
            truth = truth_of(feeder.produced_messages)
            # A metric event of the whole stream, produced by the authenticated aggregator.
            (*_, event) = read_until(
                events,
                lambda seen: bool(seen) and seen[-1]["total_messages"] == produced,
                30,
                "a metric event of every message",
            )
            dead = read_until(letters, lambda seen: len(seen) >= truth.invalid, 30, "dead letters")
        assert_matches(totals, truth)
        assert (event["total_errors"], event["window_size"]) == (truth.invalid, truth.valid)
        assert event["device_distribution"] == dict(truth.devices)
        assert Counter(letter["error_code"] for letter in dead) == truth.invalid_codes
        for log in (worker_log, aggregator_log):
            assert PASSWORD not in log.read_text(errors="replace"), f"{log.name} shows it"
    finally:
        events.close()
        letters.close()
        client.close()


@pytest.mark.parametrize(
    "command",
    [("worker", "--processes", "1"), ("aggregate",), ("topics", "create")],
    ids=["worker", "aggregate", "topics-create"],
)
def test_a_wrong_password_stops_at_startup_with_one_clear_message(
    sasl_kafka: SaslKafka, local_redis_url: str, command: tuple[str, ...]
) -> None:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": sasl_kafka.bootstrap,
        "REDIS_URL": local_redis_url,
        "KAFKA_SASL_PASSWORD": WRONG_PASSWORD,
    }
    started = time.monotonic()
    result = run(*command, *LOGIN, env=env, timeout=30)
    elapsed = time.monotonic() - started

    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert elapsed < 20, f"{elapsed:.1f} s to give up"
    assert WRONG_PASSWORD not in output
    assert PASSWORD not in output
    # One message, not one per reconnection attempt (librdkafka retries every ~0.3 s).
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith(
        f"Error: Kafka at {sasl_kafka.bootstrap}: SASL authentication failed"
    )
    assert "invalid credentials" in lines[0]
    assert "KAFKA_SASL_USERNAME" in lines[0]
    assert "KAFKA_SASL_PASSWORD" in lines[0]
