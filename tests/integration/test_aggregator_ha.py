"""Two `loginmetrics aggregate` processes on the real stack: one emits, the other takes over
within twice the lease when the leader is SIGKILLed, and no window end is emitted twice."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from loginmetrics.window import WindowLayout
from tests.support import MetricEvents, lease_holder_pid, loginmetrics, pipeline_env

pytestmark = pytest.mark.integration

LEASE_SECONDS = 3


def wait_for_line(log: Path, text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while text not in log.read_text():
        assert time.monotonic() < deadline, f"{log.name} never said {text!r}"
        time.sleep(0.1)


@pytest.mark.timeout(90)
def test_standby_takes_over_a_killed_leader_without_repeating_a_window(
    kafka_bootstrap: str,
    redis_url: str,
    redis_client: redis.Redis,
    redis_prefix: str,
    new_topic: Callable[..., str],
    tmp_path: Path,
) -> None:
    topic = new_topic(1)
    layout = WindowLayout(prefix=redis_prefix, window_seconds=10)
    env = pipeline_env(
        kafka_bootstrap,
        redis_url,
        redis_prefix,
        metrics_topic=topic,
        window=10,
        emit_interval=1,
        lease_seconds=LEASE_SECONDS,
    )
    reader = MetricEvents(kafka_bootstrap, topic)
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    try:
        with (
            loginmetrics("aggregate", env=env, log=first_log) as first,
            loginmetrics("aggregate", env=env, log=second_log) as second,
        ):
            reader.wait_for(lambda: len(reader.events) >= 3, 30, "the first metric events")
            leader = lease_holder_pid(redis_client, layout)
            assert leader in (first.pid, second.pid)
            standby, standby_log = (
                (second, second_log) if leader == first.pid else (first, first_log)
            )

            wait_for_line(standby_log, "standing by", timeout=20)

            os.kill(leader, signal.SIGKILL)
            killed_ms = time.time() * 1000
            reader.wait_for(
                lambda: any(ts > killed_ms for _, ts in reader.events),
                2 * LEASE_SECONDS + 10,
                "an event from the standby",
            )
            takeover_ms = min(ts for _, ts in reader.events if ts > killed_ms)
            assert lease_holder_pid(redis_client, layout) == standby.pid
            count = len(reader.events)
            reader.wait_for(lambda: len(reader.events) >= count + 2, 10, "events after takeover")

            standby.send_signal(signal.SIGINT)  # Ctrl-C in a terminal: graceful
            assert standby.wait(15) == 0, standby_log.read_text()[-3000:]
    finally:
        reader.close()

    log = standby_log.read_text()
    assert (takeover_ms - killed_ms) / 1000 <= 2 * LEASE_SECONDS, log[-3000:]
    ends = [end for end, _ in reader.events]
    assert len(ends) == len(set(ends)), f"a window end was emitted twice: {ends}"
    assert ends == sorted(ends)
    assert redis_client.get(layout.aggregator_lease_key) is None, "lease released on SIGINT"
    assert log.index("standing by") < log.index("leading"), "the standby logs its takeover"
