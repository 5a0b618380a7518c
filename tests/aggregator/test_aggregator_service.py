"""The aggregator loop against fakeredis, a recording producer and a controlled clock:
one leader, one event per window end, takeover, lost lease, outages, graceful stop."""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import fakeredis
import pytest
import redis

from loginmetrics.aggregator.lease import AggregatorLease
from loginmetrics.aggregator.service import Aggregator
from loginmetrics.aggregator.settings import AggregatorSettings
from loginmetrics.window import BucketField, WindowLayout, WindowReader
from loginmetrics.window.layout import COUNT_INVALID, COUNT_VALID

LAYOUT = WindowLayout(prefix="svc-test", bucket_seconds=1, window_seconds=60)
SETTINGS = AggregatorSettings(
    kafka={"bootstrap.servers": "127.0.0.1:9"},
    redis_url="redis://unused",
    layout=LAYOUT,
    metrics_topic="metrics",
    emit_interval_seconds=10.0,
    lease_seconds=15.0,
)
START = 1_000_000.3  # Redis clock at the start of each test: tick 100000, window end 1_000_000


class Clocks:
    """The Redis server clock and the local monotonic clock, moved together by the test."""

    def __init__(self) -> None:
        self.server = START
        self.local = 50.0

    def advance(self, seconds: float) -> None:
        self.server += seconds
        self.local += seconds


class ClockedReader(WindowReader):
    def __init__(self, client: redis.Redis, clocks: Clocks) -> None:
        super().__init__(client, LAYOUT)
        self._clocks = clocks

    def server_time(self) -> float:
        return self._clocks.server


class RecordingProducer:
    """The part of confluent_kafka.Producer the publisher uses."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.keys: list[bytes] = []
        self.failures: list[BaseException] = []
        self.flush_timeouts: list[float] = []

    def produce(
        self, topic: str, value: bytes, key: bytes, on_delivery: Callable[..., None]
    ) -> None:
        if self.failures:
            raise self.failures.pop(0)
        assert topic == "metrics"
        self.events.append(json.loads(value))
        self.keys.append(key)
        on_delivery(None, None)

    def flush(self, timeout: float) -> int:
        self.flush_timeouts.append(timeout)
        return 0

    def window_ends(self) -> list[str]:
        return [event["window_end"] for event in self.events]


class Node:
    """One aggregator process: its own Redis connection, producer and local clock."""

    def __init__(self, server: fakeredis.FakeServer, clocks: Clocks, token: str) -> None:
        self.client = fakeredis.FakeRedis(server=server)
        self.producer = RecordingProducer()
        self.stop = threading.Event()
        self.lease = AggregatorLease(self.client, LAYOUT, SETTINGS.lease_seconds, token=token)
        self.aggregator = Aggregator(
            SETTINGS,
            self.producer,  # type: ignore[arg-type]
            ClockedReader(self.client, clocks),
            self.lease,
            self.stop,
            clock=lambda: clocks.local,
        )

    def step(self) -> float:
        return self.aggregator.step()


@pytest.fixture
def server() -> fakeredis.FakeServer:
    return fakeredis.FakeServer()


@pytest.fixture
def clocks() -> Clocks:
    return Clocks()


@pytest.fixture
def node_a(server: fakeredis.FakeServer, clocks: Clocks) -> Node:
    return Node(server, clocks, "a")


@pytest.fixture
def node_b(server: fakeredis.FakeServer, clocks: Clocks) -> Node:
    return Node(server, clocks, "b")


def test_only_the_leader_emits_one_event_per_tick(
    node_a: Node, node_b: Node, clocks: Clocks
) -> None:
    node_a.step()
    node_b.step()
    node_a.step()
    clocks.advance(10)
    node_a.step()
    node_b.step()

    assert node_a.aggregator.is_leader
    assert not node_b.aggregator.is_leader
    assert node_a.producer.window_ends() == [
        "1970-01-12T13:46:40.000000",
        "1970-01-12T13:46:50.000000",
    ]
    assert node_b.producer.events == []
    assert node_a.producer.keys == [b"svc-test", b"svc-test"]
    # each tick waits for the broker's ack, but never longer than a lease renewal period
    assert all(t <= SETTINGS.renew_interval_seconds for t in node_a.producer.flush_timeouts)


def test_next_wake_up_is_the_next_tick_or_lease_renewal(node_a: Node, clocks: Clocks) -> None:
    wait = node_a.step()  # at 0.3 s into the tick: next tick in 9.7 s, renewal in 5 s

    assert wait == pytest.approx(5.0)
    clocks.advance(5.0)
    assert node_a.step() == pytest.approx(4.7, abs=0.01)


def test_event_reports_the_window_totals(node_a: Node) -> None:
    counts = LAYOUT.bucket_key(999_990, BucketField.COUNTS)
    node_a.client.hset(counts, mapping={COUNT_VALID: 3, COUNT_INVALID: 1})
    node_a.client.zincrby(LAYOUT.bucket_key(999_990, BucketField.DEVICES), 3, "iOS")
    node_a.client.pfadd(LAYOUT.bucket_key(999_990, BucketField.USERS), "u1", "u2")

    node_a.step()

    (event,) = node_a.producer.events
    assert event["window_seconds"] == 60
    assert event["total_messages"] == 4
    assert event["total_errors"] == 1
    assert event["error_rate"] == 25.0
    assert event["processing_rate"] == 0.4  # 4 messages over the 10 s since bucket 999_990
    assert event["device_distribution"] == {"iOS": 3}
    assert event["active_users"] == 2


def test_an_empty_window_emits_zeros(node_a: Node) -> None:
    node_a.step()

    (event,) = node_a.producer.events
    assert event["total_messages"] == event["window_size"] == event["active_users"] == 0
    assert event["processing_rate"] == event["error_rate"] == 0.0
    assert event["device_distribution"] == {}


def test_standby_takes_over_without_repeating_a_window_end(
    node_a: Node, node_b: Node, clocks: Clocks
) -> None:
    node_a.step()
    node_b.step()
    node_a.client.delete(LAYOUT.aggregator_lease_key)  # a died; its lease expired

    clocks.advance(SETTINGS.renew_interval_seconds)
    node_b.step()
    clocks.advance(10)
    node_b.step()

    assert node_b.aggregator.is_leader
    assert node_a.producer.window_ends() == ["1970-01-12T13:46:40.000000"]
    assert node_b.producer.window_ends() == ["1970-01-12T13:46:50.000000"]


def test_a_leader_that_lost_its_lease_stands_by(
    node_a: Node, node_b: Node, clocks: Clocks, caplog: pytest.LogCaptureFixture
) -> None:
    node_a.step()
    node_a.client.delete(LAYOUT.aggregator_lease_key)
    node_b.step()  # b takes the expired lease

    clocks.advance(SETTINGS.renew_interval_seconds)
    with caplog.at_level(logging.WARNING, logger="loginmetrics.aggregator.service"):
        node_a.step()
    clocks.advance(10)
    node_a.step()
    node_b.step()

    assert not node_a.aggregator.is_leader
    assert "lost leadership" in caplog.text
    assert len(node_a.producer.events) == 1
    assert len(node_b.producer.events) == 1


def test_a_paused_leader_waking_mid_tick_cannot_emit(
    server: fakeredis.FakeServer, clocks: Clocks, node_b: Node
) -> None:
    fast = AggregatorSettings(**{**_fields(SETTINGS), "emit_interval_seconds": 1.0})
    client = fakeredis.FakeRedis(server=server)
    producer = RecordingProducer()
    zombie = Aggregator(
        fast,
        producer,  # type: ignore[arg-type]
        ClockedReader(client, clocks),
        AggregatorLease(client, LAYOUT, fast.lease_seconds, token="zombie"),
        threading.Event(),
        clock=lambda: clocks.local,
    )
    zombie.step()
    client.delete(LAYOUT.aggregator_lease_key)
    node_b.step()

    clocks.advance(1.0)  # a tick is due before the zombie's next renewal
    zombie.step()

    assert not zombie.is_leader
    assert len(producer.events) == 1


def test_redis_outage_is_retried_with_backoff(
    server: fakeredis.FakeServer, node_a: Node, caplog: pytest.LogCaptureFixture
) -> None:
    server.connected = False
    with caplog.at_level(logging.WARNING, logger="loginmetrics.aggregator.service"):
        delays = [node_a.step() for _ in range(3)]
    server.connected = True
    node_a.step()

    assert all(0 < delay <= 5.0 for delay in delays)
    assert "Redis unavailable" in caplog.text
    assert len(node_a.producer.events) == 1


def test_a_refused_produce_is_retried_for_the_claimed_window(node_a: Node) -> None:
    node_a.producer.failures.append(BufferError("queue full"))

    delay = node_a.step()
    node_a.step()
    node_a.step()

    assert delay > 0
    assert node_a.producer.window_ends() == ["1970-01-12T13:46:40.000000"]


def test_graceful_stop_flushes_and_releases_the_lease(node_a: Node, node_b: Node) -> None:
    node_a.step()
    node_a.stop.set()

    node_a.aggregator.run()

    assert node_a.lease.holder() is None
    assert len(node_a.producer.flush_timeouts) == 2  # after the event, and on the way out
    assert node_b.lease.acquire()


def test_run_stops_promptly_when_asked(node_a: Node) -> None:
    thread = threading.Thread(target=node_a.aggregator.run)
    thread.start()
    node_a.stop.set()
    thread.join(timeout=5)

    assert not thread.is_alive()


def _fields(settings: AggregatorSettings) -> dict[str, Any]:
    return {name: getattr(settings, name) for name in settings.__dataclass_fields__}


class SlowAckProducer(RecordingProducer):
    """The broker takes most of a tick to acknowledge each event."""

    def __init__(self, clocks: Clocks, ack_seconds: float) -> None:
        super().__init__()
        self._clocks = clocks
        self._ack_seconds = ack_seconds

    def flush(self, timeout: float) -> int:
        self._clocks.advance(min(timeout, self._ack_seconds))
        return super().flush(timeout)


def test_a_slow_broker_does_not_make_the_leader_skip_ticks(
    server: fakeredis.FakeServer, clocks: Clocks
) -> None:
    every_second = AggregatorSettings(**{**_fields(SETTINGS), "emit_interval_seconds": 1.0})
    client = fakeredis.FakeRedis(server=server)
    producer = SlowAckProducer(clocks, ack_seconds=0.8)
    aggregator = Aggregator(
        every_second,
        producer,  # type: ignore[arg-type]
        ClockedReader(client, clocks),
        AggregatorLease(client, LAYOUT, every_second.lease_seconds, token="a"),
        threading.Event(),
        clock=lambda: clocks.local,
    )

    while clocks.server < START + 10:
        clocks.advance(aggregator.step())

    ends = [
        datetime.fromisoformat(end).replace(tzinfo=UTC).timestamp()
        for end in producer.window_ends()
    ]
    assert len(ends) == 11
    assert all(b - a == 1 for a, b in itertools.pairwise(ends))


def test_a_redis_clock_that_steps_back_is_a_warning_and_never_a_repeated_event(
    node_a: Node, clocks: Clocks, caplog: pytest.LogCaptureFixture
) -> None:
    node_a.step()
    clocks.advance(10)
    node_a.step()
    with caplog.at_level(logging.WARNING, logger="loginmetrics.aggregator.service"):
        clocks.advance(10)
        clocks.server -= 25  # an NTP step or a failover to a host whose clock is behind
        node_a.step()
        for _ in range(3):
            clocks.advance(10)
            node_a.step()

    assert caplog.text.count("the Redis clock stepped back 25.0 s") == 1
    ends = node_a.producer.window_ends()
    assert len(ends) == len(set(ends)), "no window end emitted twice"
    assert ends == sorted(ends)


def test_a_redis_clock_that_jumps_ahead_says_how_many_events_are_skipped(
    node_a: Node, clocks: Clocks, caplog: pytest.LogCaptureFixture
) -> None:
    node_a.step()
    with caplog.at_level(logging.WARNING, logger="loginmetrics.aggregator.service"):
        clocks.advance(10)
        clocks.server += 60
        node_a.step()
    assert "the Redis clock jumped ahead 60.0 s: about 6 metric events" in caplog.text


def test_a_clock_that_keeps_time_draws_no_warning(
    node_a: Node, clocks: Clocks, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="loginmetrics.aggregator.service"):
        for _ in range(5):
            node_a.step()
            clocks.advance(10)
            clocks.server += 0.5  # drift and slow replies stay under the tolerance
    assert "Redis clock" not in caplog.text


def test_the_event_lists_at_most_the_settings_distribution_values(
    server: fakeredis.FakeServer, clocks: Clocks
) -> None:
    client = fakeredis.FakeRedis(server=server)
    bucket = 999_990  # inside the first window the aggregator publishes
    client.zadd(LAYOUT.bucket_key(bucket, BucketField.LOCALES), {"TX": 5, "OH": 4, "CA": 3})
    client.zadd(LAYOUT.bucket_key(bucket, BucketField.DEVICES), {"iOS": 12})
    client.zadd(LAYOUT.bucket_key(bucket, BucketField.VERSIONS), {"2.3.0": 12})
    client.hset(LAYOUT.bucket_key(bucket, BucketField.COUNTS), COUNT_VALID, 12)
    settings = AggregatorSettings(**{**_fields(SETTINGS), "max_distribution_values": 2})
    producer = RecordingProducer()
    aggregator = Aggregator(
        settings,
        producer,  # type: ignore[arg-type]
        ClockedReader(client, clocks),
        AggregatorLease(client, LAYOUT, settings.lease_seconds, token="one"),
        threading.Event(),
        clock=lambda: clocks.local,
    )
    aggregator.step()
    (event,) = producer.events
    assert event["location_distribution"] == {"TX": 5, "OH": 4, "__other__": 3}
    assert event["window_size"] == 12


class SilentProducer(RecordingProducer):
    """Takes events but never acknowledges them: the leader dies before Kafka's ack."""

    def produce(
        self, topic: str, value: bytes, key: bytes, on_delivery: Callable[..., None]
    ) -> None:
        self.events.append(json.loads(value))

    def flush(self, timeout: float) -> int:
        return len(self.events)


def settling_node(
    server: fakeredis.FakeServer, clocks: Clocks, token: str, on_topic: set[tuple[int, int, int]]
) -> Node:
    node = Node(server, clocks, token)
    node.aggregator = Aggregator(
        SETTINGS,
        node.producer,  # type: ignore[arg-type]
        ClockedReader(node.client, clocks),
        node.lease,
        node.stop,
        clock=lambda: clocks.local,
        published=lambda: on_topic,
    )
    return node


@pytest.mark.parametrize("delivered", [False, True])
def test_an_event_a_dead_leader_claimed_is_published_by_the_next_unless_it_is_on_the_topic(
    server: fakeredis.FakeServer, clocks: Clocks, delivered: bool
) -> None:
    dead = Node(server, clocks, "dead")
    dead.producer = SilentProducer()
    dead.aggregator._publisher._producer = dead.producer  # type: ignore[assignment]
    dead.step()  # claims the window ending 1_000_000; Kafka never acknowledges it
    assert dead.lease.unconfirmed() == [(60, 1_000_000, 0)]
    dead.client.delete(LAYOUT.aggregator_lease_key)  # its lease lapses
    on_topic = {(60, 1_000_000, 0)} if delivered else set()
    successor = settling_node(server, clocks, "next", on_topic)

    successor.step()

    published = [e["window_end"] for e in successor.producer.events]
    assert published == ([] if delivered else ["1970-01-12T13:46:40.000000"])
    assert successor.lease.unconfirmed() == []
    clocks.advance(10)
    successor.step()
    assert successor.producer.window_ends()[-1] == "1970-01-12T13:46:50.000000"


def test_each_tick_publishes_one_event_per_window_length_from_the_same_buckets(
    server: fakeredis.FakeServer, clocks: Clocks
) -> None:
    node = Node(server, clocks, "a")
    settings = dataclasses.replace(SETTINGS, windows=(60, 10, 30))
    node.aggregator = Aggregator(
        settings,
        node.producer,  # type: ignore[arg-type]
        ClockedReader(node.client, clocks),
        node.lease,
        node.stop,
        clock=lambda: clocks.local,
    )
    for start, valid in ((999_945, 5), (999_975, 3), (999_995, 2)):
        node.client.hset(LAYOUT.bucket_key(start, BucketField.COUNTS), COUNT_VALID, valid)

    node.step()

    published = [(e["window_seconds"], e["window_size"]) for e in node.producer.events]
    assert published == [(10, 2), (30, 5), (60, 10)]
    assert node.lease.unconfirmed() == []
