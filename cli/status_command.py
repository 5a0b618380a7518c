"""``loginmetrics status``: how the pipeline stands, from Redis and Kafka: the leading aggregator,
the last window, each partition's applied offset and lag, the topic incarnation and the layout."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import click
import redis

from loginmetrics.aggregator.lease import LeaseState, read_lease
from loginmetrics.cli import options
from loginmetrics.cli.partition_positions import (
    GroupMembers,
    KafkaPositions,
    PartitionPosition,
    positions,
)
from loginmetrics.cli.preflight import describe_redis
from loginmetrics.runtime.clients import SentinelConfig, redis_client
from loginmetrics.window import RecordedLayout, WindowLayout, read_layout
from loginmetrics.window.applied_offsets import AppliedOffsets
from loginmetrics.window.throughput import RecentThroughput, recent_throughput

# Workers report paused partitions only to Prometheus (loginmetrics_partitions_paused); nothing
# in Redis or Kafka says it, so status cannot.
PAUSED_UNKNOWN = (
    "unknown: workers report paused partitions only as the loginmetrics_partitions_paused "
    "metric (their /metrics port)"
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


def _iso(epoch: float | None) -> str | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC).isoformat()


def status_json(report: StatusReport) -> dict[str, Any]:
    share = 1 / max(1, len(report.partitions))
    layout = {k: v for k, v in asdict(report.layout).items() if k != "fields"}
    return {
        "redis_prefix": report.prefix,
        "read_at": _iso(report.server_time),
        "layout": layout if report.layout.exists else None,
        "aggregator": {
            "leader": report.lease.holder,
            "lease_expires_in_seconds": report.lease.expires_in_seconds,
            "last_window_end": _iso(report.lease.last_emitted),
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
    }


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _incarnation(report: StatusReport) -> str:
    broker, window = report.broker_topic_id, report.window_topic_id
    if window is None:
        return f"id {broker}; the window has recorded none yet (no worker has started)"
    if window == broker:
        return f"id {broker}; the window's offsets belong to it"
    return (
        f"id {broker}, but the window's offsets belong to {window}: the topic was recreated, "
        "workers will read it from its start"
    )


def status_text(report: StatusReport) -> str:
    lease = report.lease
    leader = (
        f"{lease.holder} (lease {_seconds(lease.expires_in_seconds)} s left)"
        if lease.holder
        else "none (no aggregator holds the lease)"
    )
    last = (
        f"{_iso(lease.last_emitted)} ({_seconds(report.last_window_age)} s ago)"
        if lease.last_emitted is not None
        else "none emitted yet"
    )
    rate = report.throughput
    members = report.members
    lines = [
        f"layout       {report.layout.describe()}",
        f"aggregator   {leader}",
        f"last window  {last}",
        f"throughput   {rate.per_second:.1f} msg/s applied over the last {rate.seconds} s",
        f"topic        {report.topic}: {_incarnation(report)}",
        f"group        {report.group}: {members.state}, {len(members.members)} member(s)"
        + "".join(f"\n               {member}" for member in members.members),
        f"paused       {PAUSED_UNKNOWN}",
        "",
        f"{'partition':>9}  {'applied':>12}  {'committed':>12}  {'high':>12}  "
        f"{'lag':>10}  {'lag s':>8}",
    ]
    share = 1 / max(1, len(report.partitions))
    for p in report.partitions:
        lines.append(
            f"{p.partition:>9}  {_offset(p.applied):>12}  {_offset(p.committed):>12}  "
            f"{p.high:>12}  {p.lag:>10}  {_seconds(report.lag_seconds(p.lag, share)):>8}"
        )
    lines.append(
        f"{'total':>9}  {'':>12}  {'':>12}  {'':>12}  {report.total_lag:>10}  "
        f"{_seconds(report.lag_seconds(report.total_lag)):>8}"
    )
    lines.append(
        "(lag s: the lag over the throughput above, shared evenly between partitions; "
        "'-' when nothing was applied lately)"
    )
    return "\n".join(lines)


def _offset(value: int | None) -> str:
    return "-" if value is None else str(value)


def read_status(client: redis.Redis, kafka: KafkaPositions, layout: WindowLayout) -> StatusReport:
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
    )


@click.command()
@options.kafka_connection
@options.redis_connection
@options.window_layout
@options.input_topic
@options.group_id
@options.output_format
def status(
    kafka: dict[str, str],
    redis_url: str,
    redis_sentinel: SentinelConfig | None,
    layout: WindowLayout,
    input_topic: str,
    group_id: str,
    output: str,
) -> None:
    """Show how the pipeline stands, from Redis and Kafka.

    \b
    The leading aggregator and its lease, the last window emitted and its
    age, the recorded window layout, the input topic's incarnation, the
    consumer group's members, and per partition: the offset applied to the
    window, the group's commit, the high watermark and the lag, in messages
    and in seconds of the last minute's throughput.

    Only --redis-prefix of the window options is used; buckets are counted
    as the recorded layout says.
    """
    client = redis_client(redis_url, redis_sentinel)
    try:
        report = read_status(client, KafkaPositions(kafka, input_topic, group_id), layout)
    except redis.RedisError as exc:
        raise click.ClickException(
            f"Redis at {describe_redis(redis_url, redis_sentinel)} did not answer: {exc}"
        ) from exc
    finally:
        client.close()
    if output == "json":
        json.dump(status_json(report), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        click.echo(status_text(report))
