"""`loginmetrics generate` against the real broker: what lands on the topic."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable

import pytest

from loginmetrics.cli.traffic import US_STATES
from tests.support import run_loginmetrics, topic_reader

pytestmark = pytest.mark.integration


def read_all(
    bootstrap: str, topic: str, expected: int, timeout: float = 60
) -> list[tuple[int, bytes, bytes]]:
    """(partition, key, value) of every message of ``topic``, once ``expected`` arrived and no
    more follows for a moment."""
    consumer = topic_reader(bootstrap, topic)
    found: list[tuple[int, bytes, bytes]] = []
    deadline = time.monotonic() + timeout
    quiet_until = None
    try:
        while time.monotonic() < deadline:
            batch = consumer.consume(1000, 0.5)
            found += [
                (m.partition() or 0, m.key() or b"", m.value() or b"")
                for m in batch
                if m.error() is None
            ]
            if len(found) >= expected and not batch:
                quiet_until = quiet_until or time.monotonic() + 2
                if time.monotonic() >= quiet_until:
                    break
    finally:
        consumer.close()
    return found


def test_count_and_seed_produce_exactly_that_reproducible_stream(
    kafka_bootstrap: str, new_topic: Callable[..., str]
) -> None:
    first, second = new_topic(4), new_topic(4)

    runs = [
        run_loginmetrics(
            kafka_bootstrap, "generate", "--topic", topic, "--count", "500", "--seed", "1"
        )
        for topic in (first, second)
    ]

    for run in runs:
        assert run.returncode == 0, run.stderr
        assert "500 messages in" in run.stderr
    messages = read_all(kafka_bootstrap, first, 500)
    assert len(messages) == 500
    assert {partition for partition, _, _ in messages} == {0, 1, 2, 3}
    events = [json.loads(value) for _, _, value in messages]
    for (_, key, _), event in zip(messages, events, strict=True):
        assert key == event["user_id"].encode()
        assert event["app_version"] == "2.3.0"
        assert event["locale"] in US_STATES
        assert isinstance(event["timestamp"], int)
        assert abs(event["timestamp"] - time.time()) < 600
    assert len({e["user_id"] for e in events}) == 500
    devices = Counter(e.get("device_type") for e in events)
    assert set(devices) <= {"android", "iOS", None}
    assert 0 < devices[None] < 500 * 0.12
    # Same seed, same users (the timestamps follow the clock).
    again = read_all(kafka_bootstrap, second, 500)
    assert sorted(key for _, key, _ in again) == sorted(key for _, key, _ in messages)


def test_a_missing_topic_is_an_error_saying_how_to_create_it(kafka_bootstrap: str) -> None:
    topic = f"test-missing-{uuid.uuid4().hex}"

    run = run_loginmetrics(kafka_bootstrap, "generate", "--topic", topic, "--count", "1")

    assert run.returncode == 1
    assert f"topic '{topic}' does not exist" in run.stderr
    assert "make stack-up" in run.stderr


def test_ctrl_c_stops_at_the_rate_flushes_and_sums_up(
    kafka_bootstrap: str, new_topic: Callable[..., str]
) -> None:
    topic = new_topic(1)
    process = subprocess.Popen(
        [sys.executable, "-m", "loginmetrics", "generate", "--topic", topic, "--rate", "20"],
        env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap},
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(3)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)

    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
    summary = stderr.strip().splitlines()[-1]
    sent = int(summary.split(" messages in ")[0].replace(",", ""))
    assert 20 <= sent <= 100  # about 20 msg/s for ~2-3 s after startup
    assert len(read_all(kafka_bootstrap, topic, sent)) == sent
