"""``loginmetrics status``: how the pipeline stands (read by ``aggregator.status``, which the HTTP
API serves too), printed for people or as JSON."""

from __future__ import annotations

import json
import sys

import click
import redis

from loginmetrics.aggregator.status import (
    PAUSED_UNKNOWN,
    StatusReport,
    iso,
    read_status,
    status_json,
)
from loginmetrics.cli import options
from loginmetrics.cli.partition_positions import KafkaPositions
from loginmetrics.cli.preflight import describe_redis
from loginmetrics.runtime.clients import SentinelConfig, redis_client
from loginmetrics.window import WindowLayout


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
        f"{iso(lease.last_emitted)} ({_seconds(report.last_window_age)} s ago)"
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
        *_event_time_lines(report),
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


def _event_time_lines(report: StatusReport) -> list[str]:
    event_time = report.event_time
    if event_time is None:
        return []
    if event_time.watermark is None:
        mark = "none yet: a partition that is not idle has no watermark (or nothing applied)"
    else:
        behind = report.server_time - event_time.watermark
        mark = f"{iso(event_time.watermark)} ({behind:.1f} s behind the Redis clock)"
    marks = ", ".join(
        f"{p}: {iso(w)}{' (idle)' if p in event_time.idle else ''}"
        for p, w in sorted(event_time.watermarks.items())
    )
    return [f"watermark    {mark}", f"partitions   {marks or 'no watermark yet'}"]


def _offset(value: int | None) -> str:
    return "-" if value is None else str(value)


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
