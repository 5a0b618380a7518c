"""`--log-format json` is all JSON, a failed start included: a command that cannot reach its
broker says so in one JSON ERROR line, and librdkafka's own lines are JSON too."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest


@pytest.fixture
def dead_bootstrap() -> str:
    with socket.create_server(("127.0.0.1", 0)) as closed:
        return f"127.0.0.1:{closed.getsockname()[1]}"  # nothing listens there once closed


@pytest.mark.parametrize(
    "command",
    [
        ["print", "--topic", "metric-event"],
        ["worker", "--processes", "1"],
        ["aggregate"],
    ],
)
def test_a_command_that_cannot_reach_kafka_says_so_in_json(
    command: list[str], dead_bootstrap: str
) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "loginmetrics",
            "--log-format",
            "json",
            "--log-level",
            "DEBUG",
            *command,
        ],
        env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": dead_bootstrap},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 1
    records = [json.loads(line) for line in result.stderr.splitlines()]  # every line is JSON
    errors = [r for r in records if r["level"] == "ERROR"]
    assert len(errors) == 1, errors
    assert errors[0]["message"].startswith(f"Kafka at {dead_bootstrap} not reachable")
    assert "make stack-up" in errors[0]["message"]
    assert any(r["logger"] == "librdkafka" for r in records)


def test_in_text_mode_the_failed_start_is_clicks_error_line(dead_bootstrap: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "loginmetrics", "print"],
        env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": dead_bootstrap},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 1
    assert result.stderr.splitlines()[-1].startswith(f"Error: Kafka at {dead_bootstrap} not")
