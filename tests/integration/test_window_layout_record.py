"""The recorded window layout on the real Redis: a worker started with another bucket length
stops before consuming, with one ERROR naming both layouts, and exit code 78."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import pytest
import redis

from loginmetrics.runtime.signals import EXIT_FATAL
from loginmetrics.window import Role, WindowLayout, read_layout
from loginmetrics.window.layout_record import record_layout
from tests.support import pipeline_env

pytestmark = pytest.mark.integration


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "loginmetrics", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def error_lines(output: str) -> list[str]:
    """ERROR lines, but the supervisor's pointer to the child's ERROR line."""
    return [
        line
        for line in output.splitlines()
        if " ERROR " in line and "its ERROR line above says what to do" not in line
    ]


@pytest.mark.timeout(120)
def test_a_worker_with_other_buckets_than_recorded_exits_78_naming_both(
    kafka_bootstrap: str,
    redis_url: str,
    redis_client: redis.Redis,
    redis_prefix: str,
    new_topic: Callable[..., str],
    unique_group_id: str,
) -> None:
    recorded = WindowLayout(prefix=redis_prefix, bucket_seconds=1, window_seconds=60)
    record_layout(redis_client, recorded, Role.WORKER)
    env = pipeline_env(
        kafka_bootstrap,
        redis_url,
        redis_prefix,
        input_topic=new_topic(2),
        dlq_topic=new_topic(1),
        group_id=unique_group_id,
        window=60,
        bucket_seconds=2,
    )
    result = run(["worker", "--processes", "1"], env)
    assert result.returncode == EXIT_FATAL, result.stderr[-3000:]
    (error,) = error_lines(result.stderr)
    assert "1 s buckets recorded, 2 s buckets here" in error
    assert "Recorded: prefix" in error
    assert "This worker: prefix" in error
    assert "consuming" not in result.stderr  # stopped before it subscribed
    assert read_layout(redis_client, recorded).bucket_seconds == 1


@pytest.mark.timeout(120)
def test_an_aggregator_reading_longer_than_the_buckets_are_kept_exits_78(
    kafka_bootstrap: str,
    redis_url: str,
    redis_client: redis.Redis,
    redis_prefix: str,
    new_topic: Callable[..., str],
) -> None:
    kept = WindowLayout(prefix=redis_prefix, window_seconds=60)
    record_layout(redis_client, kept, Role.WORKER)
    env = pipeline_env(
        kafka_bootstrap, redis_url, redis_prefix, metrics_topic=new_topic(1), window=120
    )
    result = run(["aggregate"], env)
    assert result.returncode == EXIT_FATAL, result.stderr[-3000:]
    (error,) = error_lines(result.stderr)
    assert "kept for a 60 s window, shorter than this aggregator's 120 s" in error
