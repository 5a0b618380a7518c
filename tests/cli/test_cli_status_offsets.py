"""``loginmetrics status`` and ``offsets show|reset`` over fakeredis and a fake Kafka: what an
operator reads, what a reset changes in Redis and Kafka, and when it refuses."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Mapping
from typing import Any

import fakeredis
import pytest
from click.testing import CliRunner

from loginmetrics.aggregator.lease import AggregatorLease, read_lease
from loginmetrics.cli import offsets_command, status_command
from loginmetrics.cli.main import cli
from loginmetrics.cli.offsets_command import Move, plan_moves
from loginmetrics.cli.partition_positions import GroupMembers, PartitionPosition
from loginmetrics.window import Role, WindowLayout
from loginmetrics.window.applied_offsets import AppliedOffsets
from loginmetrics.window.layout import BucketField, TimeBasis
from loginmetrics.window.layout_record import record_layout
from loginmetrics.window.throughput import recent_throughput

PREFIX = "t"
TOPIC = "logins"
GROUP = "g"
LAYOUT = WindowLayout(prefix=PREFIX, window_seconds=60)


class FakeKafka:
    """The broker's side as ``KafkaPositions`` reports it."""

    def __init__(self) -> None:
        self.topic, self.group = TOPIC, GROUP
        self.bounds = {0: (0, 1000), 1: (200, 900)}
        self.commits: dict[int, int | None] = {0: 500, 1: None}
        self.group_members: tuple[str, ...] = ()
        self.id = "topic-id-1"
        self.at_time = {0: 700, 1: 800}

    def partitions(self) -> list[int]:
        return sorted(self.bounds)

    def topic_id(self) -> str:
        return self.id

    def watermarks(self, partitions: list[int]) -> dict[int, tuple[int, int]]:
        return {p: self.bounds[p] for p in partitions}

    def committed(self, partitions: list[int]) -> dict[int, int | None]:
        return {p: self.commits.get(p) for p in partitions}

    def members(self) -> GroupMembers:
        return GroupMembers("stable" if self.group_members else "empty", self.group_members)

    def offsets_at(self, partitions: list[int], _epoch_ms: int) -> dict[int, int]:
        return {p: self.at_time[p] for p in partitions}

    def commit(self, next_offsets: Mapping[int, int]) -> None:
        self.commits.update(next_offsets)


@pytest.fixture
def server() -> fakeredis.FakeServer:
    return fakeredis.FakeServer()


@pytest.fixture
def window(server: fakeredis.FakeServer) -> Iterator[fakeredis.FakeRedis]:
    client = fakeredis.FakeRedis(server=server)
    yield client
    client.close()


@pytest.fixture
def kafka(monkeypatch: pytest.MonkeyPatch, server: fakeredis.FakeServer) -> FakeKafka:
    fake = FakeKafka()
    for module in (status_command, offsets_command):
        monkeypatch.setattr(module, "KafkaPositions", lambda *_args: fake)
        monkeypatch.setattr(module, "redis_client", lambda *_a: fakeredis.FakeRedis(server=server))
    return fake


def invoke(*args: str) -> Any:
    """``loginmetrics ARGS`` on the test's topic, group and prefix."""
    words = 2 if args[0] == "offsets" else 1
    base = ["--input-topic", TOPIC, "--group-id", GROUP, "--redis-prefix", PREFIX]
    return CliRunner().invoke(cli, [*args[:words], *base, *args[words:]])


def applied(window: fakeredis.FakeRedis) -> dict[int, int | None]:
    return AppliedOffsets(window, LAYOUT, TOPIC).read([0, 1])


def test_status_shows_leader_last_window_lag_and_layout(
    kafka: FakeKafka, window: fakeredis.FakeRedis
) -> None:
    record_layout(window, LAYOUT, Role.WORKER)
    AppliedOffsets(window, LAYOUT, TOPIC).reset("topic-id-1", {0: 899, 1: 599})
    lease = AggregatorLease(window, LAYOUT, 15, token="host:42:abc")
    assert lease.acquire()
    now = int(window.time()[0])
    lease.claim(now - 10)
    for start in range(now - 60, now):  # 10 msg/s over the last minute
        window.hset(
            LAYOUT.bucket_key(start, BucketField.COUNTS), mapping={"valid": 9, "invalid": 1}
        )

    result = invoke("status", "--output", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["aggregator"]["leader"] == "host:42:abc"
    assert 0 < report["aggregator"]["lease_expires_in_seconds"] <= 15
    assert 10 <= report["aggregator"]["last_window_age_seconds"] < 12
    assert report["layout"]["bucket_seconds"] == 1
    assert report["layout"]["kept_window_seconds"] == 60
    assert report["topic"] == {"name": TOPIC, "id": "topic-id-1", "window_topic_id": "topic-id-1"}
    rows = {row["partition"]: row for row in report["partitions"]}
    assert rows[0]["lag_messages"] == 100  # applied 899, ends at 1000
    assert rows[1]["lag_messages"] == 300
    assert report["throughput"]["per_second"] == pytest.approx(10, rel=0.05)
    assert report["lag"]["seconds"] == pytest.approx(40, rel=0.05)  # 400 messages at 10/s
    assert rows[0]["lag_seconds"] == pytest.approx(20, rel=0.05)  # half the rate each
    assert report["paused_partitions"] is None
    assert "unknown" in report["paused_partitions_note"]

    text = invoke("status")
    assert text.exit_code == 0, text.output
    assert "host:42:abc (lease" in text.output
    assert "the window's offsets belong to it" in text.output
    assert "paused       unknown" in text.output


def test_status_without_anything_recorded_says_so(
    kafka: FakeKafka, window: fakeredis.FakeRedis
) -> None:
    result = invoke("status")
    assert result.exit_code == 0, result.output
    assert "layout       nothing recorded" in result.output
    assert "none (no aggregator holds the lease)" in result.output
    assert "none emitted yet" in result.output
    # Nothing applied lately: a lag cannot be turned into seconds.
    total = next(line for line in result.output.splitlines() if line.strip().startswith("total"))
    assert total.split()[-2:] == ["1200", "-"]  # 500 from the commit, 700 from the earliest


def test_offsets_show_reads_redis_then_the_commit_then_the_earliest(
    kafka: FakeKafka, window: fakeredis.FakeRedis
) -> None:
    AppliedOffsets(window, LAYOUT, TOPIC).reset(None, {0: 10})
    rows = json.loads(invoke("offsets", "show", "-o", "json").output)["partitions"]
    assert [(r["applied_offset"], r["next_offset"]) for r in rows] == [(10, 11), (None, 200)]


def test_a_reset_without_yes_shows_the_plan_and_changes_nothing(
    kafka: FakeKafka, window: fakeredis.FakeRedis
) -> None:
    AppliedOffsets(window, LAYOUT, TOPIC).reset("topic-id-1", {0: 899, 1: 599})
    result = invoke("offsets", "reset", "--to-earliest")
    assert result.exit_code == 1
    assert "add --yes" in result.output
    assert "900" in result.output  # where partition 0 is read from now
    assert applied(window) == {0: 899, 1: 599}
    assert kafka.commits == {0: 500, 1: None}


def test_a_reset_moves_redis_and_kafka_and_keeps_the_incarnation(
    kafka: FakeKafka, window: fakeredis.FakeRedis
) -> None:
    AppliedOffsets(window, LAYOUT, TOPIC).reset("topic-id-1", {0: 899, 1: 599})
    result = invoke("offsets", "reset", "--to-earliest", "--yes")
    assert result.exit_code == 0, result.output
    # Partition 0 starts at offset 0: nothing is applied (the commit says 0); 1 starts at 200.
    assert applied(window) == {0: None, 1: 199}
    assert kafka.commits == {0: 0, 1: 200}
    assert AppliedOffsets(window, LAYOUT, TOPIC).topic_id() == "topic-id-1"


@pytest.mark.parametrize(
    ("how", "expected"),
    [
        (["--to-latest"], {0: 999, 1: 599}),
        (["--to-offset", "50"], {0: 49, 1: 599}),
        (["--to-offset", "5000"], {0: 999, 1: 599}),  # past the end: the end
        (["--to-datetime", "2025-01-12T10:00:00Z"], {0: 699, 1: 599}),
    ],
)
def test_a_reset_of_one_partition_leaves_the_others(
    kafka: FakeKafka, window: fakeredis.FakeRedis, how: list[str], expected: dict[int, int]
) -> None:
    AppliedOffsets(window, LAYOUT, TOPIC).reset("topic-id-1", {0: 899, 1: 599})
    result = invoke("offsets", "reset", *how, "--partition", "0", "--yes")
    assert result.exit_code == 0, result.output
    assert applied(window) == expected
    assert kafka.commits[1] is None  # not touched


def test_a_reset_is_refused_while_workers_hold_the_group(
    kafka: FakeKafka, window: fakeredis.FakeRedis
) -> None:
    AppliedOffsets(window, LAYOUT, TOPIC).reset("topic-id-1", {0: 899})
    kafka.group_members = ("loginmetrics-worker-0-123 on /10.0.0.5",)
    result = invoke("offsets", "reset", "--to-earliest", "--yes")
    assert result.exit_code == 1
    assert "has 1 member(s)" in result.output
    assert "Stop them first" in result.output
    assert applied(window)[0] == 899


def test_a_reset_needs_exactly_one_target(kafka: FakeKafka) -> None:
    result = invoke("offsets", "reset", "--to-earliest", "--to-offset", "3", "--yes")
    assert result.exit_code == 2
    assert "exactly one of" in result.output


def test_an_unknown_partition_is_a_bad_parameter(kafka: FakeKafka) -> None:
    result = invoke("offsets", "reset", "--to-latest", "--partition", "7", "--yes")
    assert result.exit_code == 2
    assert "has no partition [7]" in result.output


def test_a_target_outside_the_log_is_clamped_with_a_note() -> None:
    current = [PartitionPosition(0, applied=None, low=100, high=200)]
    assert plan_moves(current, {0: 5}) == [
        Move(0, before=100, after=100, note="5 is outside [100, 200]: moved to the earliest")
    ]
    assert Move(0, 10, 0).last_applied is None
    assert Move(0, 10, 1).last_applied == 0


def test_a_reset_over_an_older_incarnation_drops_its_offsets(
    window: fakeredis.FakeRedis,
) -> None:
    offsets = AppliedOffsets(window, LAYOUT, TOPIC)
    offsets.reset("old-id", {0: 10, 1: 20})
    assert offsets.reset("new-id", {0: 3}) == "old-id"
    assert offsets.read([0, 1]) == {0: 3, 1: None}
    assert offsets.topic_id() == "new-id"
    assert offsets.reset(None, {1: 4}) is None  # the broker did not say: the id is kept
    assert offsets.topic_id() == "new-id"


def test_recent_throughput_counts_only_complete_buckets(window: fakeredis.FakeRedis) -> None:
    layout = WindowLayout(prefix=PREFIX, bucket_seconds=7, window_seconds=70)
    now = int(window.time()[0])
    current = layout.bucket_start(now)
    window.hset(layout.bucket_key(current, BucketField.COUNTS), "valid", 1000)  # still open
    window.hset(layout.bucket_key(current - 7, BucketField.COUNTS), "valid", 56)
    window.hset(layout.bucket_key(current - 63, BucketField.COUNTS), "invalid", 5)  # too old
    recent = recent_throughput(window, layout)
    assert (recent.messages, recent.seconds, recent.end) == (56, 56, current)
    assert recent.per_second == 1.0


def test_the_lease_reads_nobody_when_nobody_holds_it(window: fakeredis.FakeRedis) -> None:
    state = read_lease(window, LAYOUT)
    assert (state.holder, state.expires_in_seconds, state.last_emitted) == (None, None, None)


def test_status_in_event_time_shows_the_watermarks_and_the_idle_partitions(
    kafka: FakeKafka, window: fakeredis.FakeRedis
) -> None:
    layout = dataclasses.replace(LAYOUT, time_basis=TimeBasis.EVENT)
    record_layout(window, layout, Role.WORKER)
    now = int(window.time()[0])
    window.hset(layout.watermarks_key(TOPIC), mapping={"0": now - 30, "1": now - 900})
    window.set(layout.first_bucket_key, now - 3600)
    # Partition 1 has been caught up for a minute: idle, it holds nothing back.
    window.hset(layout.caught_up_key(TOPIC), "1", f"{now - 60}:{now}")

    result = invoke("status", "--time-basis", "event", "--output", "json")

    assert result.exit_code == 0, result.output
    event_time = json.loads(result.output)["event_time"]
    assert event_time["idle_partitions"] == [1]
    assert 30 <= event_time["watermark_lag_seconds"] < 32  # partition 0's, the only busy one
    text = invoke("status", "--time-basis", "event")
    assert "s behind the Redis clock" in text.output
    assert "(idle)" in text.output
