"""The aggregator under Redis faults, sorted as the worker sorts them: "not now" (READONLY, OOM,
LOADING …) backs off and resumes by itself; "will not heal" (NOPERM, a script error) ends
the loop with FatalRedisError after the usual shutdown."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import fakeredis
import pytest
import redis
from redis.exceptions import NoPermissionError, OutOfMemoryError, ReadOnlyError

from loginmetrics.aggregator.lease import AggregatorLease
from loginmetrics.aggregator.service import Aggregator
from loginmetrics.aggregator.settings import AggregatorSettings
from loginmetrics.runtime.redis_errors import FatalRedisError
from loginmetrics.window import WindowLayout, WindowReader

LAYOUT = WindowLayout(prefix="agg-faults", bucket_seconds=1, window_seconds=60)
SETTINGS = AggregatorSettings(
    kafka={"bootstrap.servers": "127.0.0.1:9"},
    redis_url="redis://unused",
    layout=LAYOUT,
    metrics_topic="metrics",
    emit_interval_seconds=10.0,
    lease_seconds=15.0,
)


class Producer:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def produce(
        self, topic: str, value: bytes, key: bytes, on_delivery: Callable[..., None]
    ) -> None:
        self.events.append(json.loads(value))
        on_delivery(None, None)

    def flush(self, timeout: float) -> int:
        return 0


class FaultyReader(WindowReader):
    """Reads the window on fakeredis; raises ``errors`` first, one per call."""

    def __init__(self, client: redis.Redis) -> None:
        super().__init__(client, LAYOUT)
        self.errors: list[redis.RedisError] = []
        self.now = 1_000_000.3

    def server_time(self) -> float:
        if self.errors:
            raise self.errors.pop(0)
        return self.now


class Rig:
    def __init__(self) -> None:
        self.local = 50.0
        self.client = fakeredis.FakeRedis()
        self.producer = Producer()
        self.reader = FaultyReader(self.client)
        self.lease = AggregatorLease(self.client, LAYOUT, SETTINGS.lease_seconds, token="a")
        self.stop = threading.Event()
        self.aggregator = Aggregator(
            SETTINGS,
            self.producer,  # type: ignore[arg-type]
            self.reader,
            self.lease,
            self.stop,
            clock=lambda: self.local,
        )

    def step(self) -> float:
        delay = self.aggregator.step()
        self.local += delay
        self.reader.now += delay
        return delay


def test_readonly_and_oom_back_off_and_the_event_follows_by_itself() -> None:
    rig = Rig()
    rig.reader.errors = [
        ReadOnlyError("You can't write against a read only replica.", status_code="READONLY"),
        ReadOnlyError("You can't write against a read only replica.", status_code="READONLY"),
        OutOfMemoryError("command not allowed when used memory > 'maxmemory'.", status_code="OOM"),
    ]
    delays = [rig.step() for _ in range(3)]
    assert rig.producer.events == []
    assert all(0 < d <= 5.0 for d in delays)
    assert delays[1] > delays[0], "backing off"

    rig.step()
    assert len(rig.producer.events) == 1
    assert rig.aggregator.is_leader


def test_a_refusal_that_will_not_heal_ends_the_loop_after_releasing_the_lease() -> None:
    rig = Rig()
    rig.step()
    assert rig.lease.holder() == "a"
    rig.reader.now += 10.0
    rig.local += 10.0
    rig.reader.errors = [
        NoPermissionError("User has no permissions to run the 'time' command", status_code="NOPERM")
    ]

    with pytest.raises(FatalRedisError, match="ACL SETUSER"):
        rig.aggregator.run()
    assert rig.lease.holder() is None, "a standby can take over at once"
    assert len(rig.producer.events) == 1
