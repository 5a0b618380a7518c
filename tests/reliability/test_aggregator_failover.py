"""Two `loginmetrics aggregate` processes; the leader is SIGKILLed, restarted as a standby, and
the new leader is SIGKILLed too: each time the standby takes over, and no window end is ever
emitted twice on the metric topic."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import pytest
import redis

from loginmetrics.window import WindowLayout
from tests.support import MetricEvents, lease_holder_pid, loginmetrics, pipeline_env

pytestmark = [pytest.mark.integration, pytest.mark.reliability, pytest.mark.timeout(120)]

LEASE_SECONDS = 2
# A standby tries to take the lease every third of it; a dead leader's lease expires after it.
TAKEOVER_BOUND_S = 2 * LEASE_SECONDS


def test_the_standby_takes_over_after_each_of_two_leader_kills(
    local_kafka: str,
    local_redis_url: str,
    redis_client: redis.Redis,
    redis_prefix: str,
    new_topic: Callable[..., str],
    tmp_path: Path,
) -> None:
    topic = new_topic(1)
    layout = WindowLayout(prefix=redis_prefix, window_seconds=10)
    env = pipeline_env(
        local_kafka,
        local_redis_url,
        redis_prefix,
        metrics_topic=topic,
        window=10,
        emit_interval=1,
        lease_seconds=LEASE_SECONDS,
    )
    metrics = MetricEvents(local_kafka, topic)
    logs: list[Path] = []
    takeovers: list[float] = []

    def start(stack: ExitStack) -> subprocess.Popen[bytes]:
        logs.append(tmp_path / f"aggregator-{len(logs)}.log")
        return stack.enter_context(loginmetrics("aggregate", env=env, log=logs[-1]))

    def kill_leader(running: list[subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
        """SIGKILL the lease holder; return the standby once it emits in the leader's place."""
        leader = lease_holder_pid(redis_client, layout)
        victim = next(p for p in running if p.pid == leader)
        standby = next(p for p in running if p is not victim)
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        killed_ms = time.time() * 1000
        metrics.wait_for(
            lambda: metrics.count_after(killed_ms) >= 1,
            TAKEOVER_BOUND_S + 10,
            "an event from the standby",
        )
        first_ms = min(at for _, at in metrics.events if at > killed_ms)
        takeovers.append((first_ms - killed_ms) / 1000)
        assert lease_holder_pid(redis_client, layout) == standby.pid
        count = len(metrics.events)
        metrics.wait_for(lambda: len(metrics.events) >= count + 2, 10, "events after takeover")
        return standby

    try:
        with ExitStack() as stack:
            first, second = start(stack), start(stack)
            metrics.wait_for(lambda: len(metrics.events) >= 3, 30, "the first metric events")

            survivor = kill_leader([first, second])
            third = start(stack)  # the killed one comes back, as a standby now
            count = len(metrics.events)
            metrics.wait_for(lambda: len(metrics.events) >= count + 3, 15, "events")
            assert lease_holder_pid(redis_client, layout) == survivor.pid, (
                "a newcomer waits its turn"
            )

            last = kill_leader([survivor, third])
            assert last is third
            last.send_signal(signal.SIGTERM)
            assert last.wait(15) == 0
    finally:
        metrics.close()

    text = "".join(log.read_text() for log in logs)
    assert all(seconds <= TAKEOVER_BOUND_S for seconds in takeovers), (takeovers, text[-3000:])
    ends = [end for end, _ in metrics.events]
    assert len(ends) == len(set(ends)), f"a window end was emitted twice: {ends}"
    assert ends == sorted(ends)
    assert text.count("taking over at the window ending") >= 3  # the first leader, then two
    print(
        f"{len(ends)} metric events, 2 leader kills, takeovers after "
        f"{', '.join(f'{s:.1f} s' for s in takeovers)}"
    )
