"""How the pipeline stands, from Redis and Kafka: the leading aggregator, the last window, each
partition's applied offset and lag, the topic incarnation and the layout. ``loginmetrics status``
prints it; the HTTP API's ``/api/v1/status`` serves ``status_json``."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import redis

from loginmetrics.aggregator.lease import LeaseState, read_lease
from loginmetrics.aggregator.partition_positions import GroupMembers, PartitionPosition, positions
from loginmetrics.window import RecordedLayout, WindowLayout, read_layout
from loginmetrics.window.applied_offsets import AppliedOffsets
from loginmetrics.window.event_clock import EventClock, global_watermark, idle_partitions
from loginmetrics.window.layout import TimeBasis
from loginmetrics.window.throughput import RecentThroughput, recent_throughput

# Workers report paused partitions only to Prometheus (loginmetrics_partitions_paused); nothing
# in Redis or Kafka says it, so status cannot.
PAUSED_UNKNOWN = (
    "unknown: workers report paused partitions only as the loginmetrics_partitions_paused "
    "metric (their /metrics port)"
)


class PartitionSource(Protocol):
    """The Kafka side: the input topic's partitions, bounds and incarnation, and the group."""

    topic: str
    group: str

    def partitions(self) -> list[int]: ...

    def topic_id(self) -> str | None: ...

    def watermarks(self, partitions: list[int]) -> dict[int, tuple[int, int]]: ...

    def committed(self, partitions: list[int]) -> dict[int, int | None]: ...

    def members(self) -> GroupMembers: ...


@dataclass(frozen=True, slots=True)
class EventTimeStatus:
    """Where event time stands: the global watermark (None: no window can close yet), each
    partition's watermark, and the idle ones."""

    watermark: float | None
    watermarks: dict[int, float]
    idle: list[int]


def read_event_time(
    client: redis.Redis, layout: WindowLayout, topic: str, partitions: int
) -> EventTimeStatus:
    reading = EventClock(client, layout, topic).read()
    return EventTimeStatus(
        watermark=global_watermark(reading, layout.event_time, partitions),
        watermarks=dict(reading.watermarks),
        idle=sorted(idle_partitions(reading, layout.event_time)),
    )


@dataclass(frozen=True, slots=True)
class StatusReport:
    """Everything ``status`` shows, read at ``server_time`` (Redis clock, epoch seconds)."""

    prefix: str
    topic: str
    group: str
    server_time: float
    layout: RecordedLayout
    lease: LeaseState
    throughput: RecentThroughput
    broker_topic_id: str | None
    window_topic_id: str | None
    members: GroupMembers
    partitions: list[PartitionPosition]
    # Event time only: the partitions' watermarks and which of them are idle.
    event_time: EventTimeStatus | None = None

    @property
    def last_window_age(self) -> float | None:
        end = self.lease.last_emitted
        return None if end is None else self.server_time - end

    def lag_seconds(self, lag: int, share: float = 1.0) -> float | None:
        """``lag`` in seconds of the recent throughput (``share`` of it: a partition's part,
        assumed even, as the window counts messages per bucket, not per partition)."""
        if lag == 0:
            return 0.0
        rate = self.throughput.per_second * share
        return None if rate <= 0 else lag / rate

    @property
    def total_lag(self) -> int:
        return sum(p.lag for p in self.partitions)


def iso(epoch: float | None) -> str | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC).isoformat()


def status_json(report: StatusReport) -> dict[str, Any]:
    share = 1 / max(1, len(report.partitions))
    layout = {k: v for k, v in asdict(report.layout).items() if k != "fields"}
    return {
        "redis_prefix": report.prefix,
        "read_at": iso(report.server_time),
        "layout": layout if report.layout.exists else None,
        "aggregator": {
            "leader": report.lease.holder,
            "lease_expires_in_seconds": report.lease.expires_in_seconds,
            "last_window_end": iso(report.lease.last_emitted),
            "last_window_age_seconds": report.last_window_age,
        },
        "throughput": {
            "messages": report.throughput.messages,
            "seconds": report.throughput.seconds,
            "per_second": report.throughput.per_second,
        },
        "topic": {
            "name": report.topic,
            "id": report.broker_topic_id,
            "window_topic_id": report.window_topic_id,
        },
        "group": {
            "id": report.group,
            "state": report.members.state,
            "members": list(report.members.members),
        },
        "partitions": [
            {
                "partition": p.partition,
                "applied_offset": p.applied,
                "committed_offset": p.committed,
                "low_watermark": p.low,
                "high_watermark": p.high,
                "lag_messages": p.lag,
                "lag_seconds": report.lag_seconds(p.lag, share),
            }
            for p in report.partitions
        ],
        "lag": {"messages": report.total_lag, "seconds": report.lag_seconds(report.total_lag)},
        "paused_partitions": None,
        "paused_partitions_note": PAUSED_UNKNOWN,
        "event_time": _event_time_json(report),
    }


def _event_time_json(report: StatusReport) -> dict[str, Any] | None:
    event_time = report.event_time
    if event_time is None:
        return None
    lag = None if event_time.watermark is None else report.server_time - event_time.watermark
    return {
        "watermark": iso(event_time.watermark),
        "watermark_lag_seconds": lag,
        "partition_watermarks": {str(p): iso(w) for p, w in event_time.watermarks.items()},
        "idle_partitions": event_time.idle,
    }


def read_status(client: redis.Redis, kafka: PartitionSource, layout: WindowLayout) -> StatusReport:
    """Everything ``status`` shows; the buckets are counted as the recorded layout says."""
    recorded = read_layout(client, layout)
    counted = layout
    if recorded.bucket_seconds is not None and recorded.bucket_seconds != layout.bucket_seconds:
        counted = WindowLayout(
            prefix=layout.prefix,
            bucket_seconds=recorded.bucket_seconds,
            window_seconds=recorded.bucket_seconds,
        )
    partitions = kafka.partitions()
    offsets = AppliedOffsets(client, layout, kafka.topic)
    event_time = None
    if recorded.time_basis == TimeBasis.EVENT.value:
        event_time = read_event_time(client, layout, kafka.topic, len(partitions))
    seconds, micros = client.time()
    return StatusReport(
        prefix=layout.prefix,
        topic=kafka.topic,
        group=kafka.group,
        server_time=float(seconds) + float(micros) / 1_000_000,
        layout=recorded,
        lease=read_lease(client, layout),
        throughput=recent_throughput(client, counted),
        broker_topic_id=kafka.topic_id(),
        window_topic_id=offsets.topic_id(),
        members=kafka.members(),
        partitions=positions(
            offsets.read(partitions), kafka.watermarks(partitions), kafka.committed(partitions)
        ),
        event_time=event_time,
    )
