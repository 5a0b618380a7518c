"""``loginmetrics offsets show|reset``: the workers' positions live in Redis (the window's applied
offsets), so Kafka's own ``--reset-offsets`` does not move them; this does, and keeps Kafka's
committed offsets in step."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import click
import redis

from loginmetrics.cli import options
from loginmetrics.cli.partition_positions import GroupMembers, KafkaPositions, PartitionPosition
from loginmetrics.cli.partition_positions import positions as combine
from loginmetrics.cli.preflight import describe_redis
from loginmetrics.runtime.clients import SentinelConfig, redis_client
from loginmetrics.window import WindowLayout
from loginmetrics.window.applied_offsets import AppliedOffsets


@dataclass(frozen=True, slots=True)
class Move:
    """One partition's reset: where a worker would start reading before, and after."""

    partition: int
    before: int
    after: int
    note: str = ""

    @property
    def last_applied(self) -> int | None:
        """The window's new last applied offset (None: the partition is read from the group's
        commit, which is set to ``after``)."""
        return self.after - 1 if self.after > 0 else None


def plan_moves(current: Sequence[PartitionPosition], targets: Mapping[int, int]) -> list[Move]:
    """Each target offset, kept within what the partition holds (as Kafka's own tool does)."""
    moves = []
    for position in current:
        if position.partition not in targets:
            continue
        wanted = targets[position.partition]
        after = min(max(wanted, position.low), position.high)
        note = ""
        if after != wanted:
            edge = "earliest" if after == position.low else "latest"
            note = f"{wanted} is outside [{position.low}, {position.high}]: moved to the {edge}"
        moves.append(Move(position.partition, position.next_offset, after, note))
    return moves


def refusal(group: str, members: GroupMembers) -> str | None:
    """Why the offsets may not be reset now: workers hold the group (they would overwrite the
    reset with their next batch, or have it pulled from under them)."""
    if not members.members:
        return None
    return (
        f"consumer group {group} has {len(members.members)} member(s) "
        f"({'; '.join(members.members)}): workers are running and would overwrite the reset. "
        "Stop them first (SIGTERM or Ctrl-C the `loginmetrics worker` / `loginmetrics run` "
        "processes; in Kubernetes scale the worker Deployment to 0 replicas), wait until "
        "`loginmetrics status` shows no member (a killed worker leaves after its session "
        "timeout, 10 s), then run this again"
    )


def moves_text(topic: str, moves: Sequence[Move]) -> str:
    lines = [f"{'partition':>9}  {'from':>12}  {'to':>12}  change"]
    for move in moves:
        change = f"{move.after - move.before:+d}"
        lines.append(
            f"{move.partition:>9}  {move.before:>12}  {move.after:>12}  {change}"
            + (f"  ({move.note})" if move.note else "")
        )
    return f"{topic} (the next offset each partition is read from):\n" + "\n".join(lines)


def positions_text(topic: str, current: Sequence[PartitionPosition]) -> str:
    lines = [
        f"{topic}:",
        f"{'partition':>9}  {'applied':>12}  {'next':>12}  {'committed':>12}  {'low':>12}  "
        f"{'high':>12}  {'lag':>10}",
    ]
    for p in current:
        applied = "-" if p.applied is None else str(p.applied)
        committed = "-" if p.committed is None else str(p.committed)
        lines.append(
            f"{p.partition:>9}  {applied:>12}  {p.next_offset:>12}  {committed:>12}  "
            f"{p.low:>12}  {p.high:>12}  {p.lag:>10}"
        )
    return "\n".join(lines)


def read_positions(
    client: redis.Redis, kafka: KafkaPositions, layout: WindowLayout
) -> list[PartitionPosition]:
    partitions = kafka.partitions()
    applied = AppliedOffsets(client, layout, kafka.topic).read(partitions)
    return combine(applied, kafka.watermarks(partitions), kafka.committed(partitions))


@click.group()
def offsets() -> None:
    """Show or reset where the workers read the input topic.

    The workers' positions are the window's applied offsets in Redis: Kafka's
    own `kafka-consumer-groups --reset-offsets` does not move them. `offsets
    reset` does, and sets the group's committed offsets to match.
    """


def _redis_failure(redis_url: str, sentinel: SentinelConfig | None, exc: Exception) -> Exception:
    return click.ClickException(
        f"Redis at {describe_redis(redis_url, sentinel)} did not answer: {exc}"
    )


@offsets.command()
@options.kafka_connection
@options.redis_connection
@options.window_layout
@options.input_topic
@options.group_id
@options.output_format
def show(
    kafka: dict[str, str],
    redis_url: str,
    redis_sentinel: SentinelConfig | None,
    layout: WindowLayout,
    input_topic: str,
    group_id: str,
    output: str,
) -> None:
    """Each partition's applied offset (Redis), commit and watermarks (Kafka).

    Only --redis-prefix of the window options is used.
    """
    client = redis_client(redis_url, redis_sentinel)
    try:
        current = read_positions(client, KafkaPositions(kafka, input_topic, group_id), layout)
    except redis.RedisError as exc:
        raise _redis_failure(redis_url, redis_sentinel, exc) from exc
    finally:
        client.close()
    if output == "json":
        rows = [
            {
                "partition": p.partition,
                "applied_offset": p.applied,
                "next_offset": p.next_offset,
                "committed_offset": p.committed,
                "low_watermark": p.low,
                "high_watermark": p.high,
                "lag_messages": p.lag,
            }
            for p in current
        ]
        json.dump({"topic": input_topic, "group": group_id, "partitions": rows}, sys.stdout)
        sys.stdout.write("\n")
    else:
        click.echo(positions_text(input_topic, current))


def _epoch_ms(text: str) -> int:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise click.BadParameter(
            f"{text!r} is not an ISO 8601 time (e.g. 2025-01-12T10:00:00Z)", param_hint="T"
        ) from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return round(moment.timestamp() * 1000)


def _targets(
    kafka: KafkaPositions,
    current: Sequence[PartitionPosition],
    chosen: list[int],
    to: tuple[str, int | str],
) -> dict[int, int]:
    kind, value = to
    if kind == "datetime":
        return kafka.offsets_at(chosen, _epoch_ms(str(value)))
    by_partition = {p.partition: p for p in current}
    if kind == "earliest":
        return {p: by_partition[p].low for p in chosen}
    if kind == "latest":
        return {p: by_partition[p].high for p in chosen}
    return dict.fromkeys(chosen, int(value))


def _confirmed(yes: bool) -> bool:
    if yes:
        return True
    if sys.stdin.isatty():
        return click.confirm("Apply this reset?", default=False)
    click.echo("Nothing changed: add --yes to apply this reset.", err=True)
    return False


@offsets.command()
@options.kafka_connection
@options.redis_connection
@options.window_layout
@options.input_topic
@options.group_id
@click.option("--to-earliest", "to", flag_value="earliest", help="The oldest offset kept.")
@click.option("--to-latest", "to", flag_value="latest", help="The end: skip the backlog.")
@click.option(
    "--to-offset", type=click.IntRange(min=0), metavar="N", help="Offset N in each partition."
)
@click.option(
    "--to-datetime",
    metavar="T",
    help="The first message at or after T (ISO 8601; UTC when no zone is given).",
)
@click.option(
    "--partition",
    "chosen",
    type=click.IntRange(min=0),
    multiple=True,
    help="Only this partition; repeatable. Default: every partition.",
)
@click.option("--yes", "-y", is_flag=True, help="Apply without asking.")
def reset(
    kafka: dict[str, str],
    redis_url: str,
    redis_sentinel: SentinelConfig | None,
    layout: WindowLayout,
    input_topic: str,
    group_id: str,
    to: str | None,
    to_offset: int | None,
    to_datetime: str | None,
    chosen: tuple[int, ...],
    yes: bool,
) -> None:
    """Move where the workers read the input topic, while none runs.

    \b
    Sets the window's applied offsets in Redis (what the workers follow) and
    the group's committed offsets in Kafka to the same place. Refused while
    the consumer group has members. Without --yes it shows what would change
    and asks (on a terminal) or exits 1.

    The window keeps what it counted: moving back counts messages again,
    moving ahead leaves them out.
    """
    choices = [c for c in (to, to_offset, to_datetime) if c is not None]
    if len(choices) != 1:
        raise click.UsageError(
            "give exactly one of --to-earliest, --to-latest, --to-offset N, --to-datetime T"
        )
    target: tuple[str, int | str] = (
        (to, 0)
        if to is not None
        else ("offset", to_offset)
        if to_offset is not None
        else ("datetime", str(to_datetime))
    )
    kafka_positions = KafkaPositions(kafka, input_topic, group_id)
    client = redis_client(redis_url, redis_sentinel)
    try:
        _reset(client, kafka_positions, layout, target, list(chosen), yes)
    except redis.RedisError as exc:
        raise _redis_failure(redis_url, redis_sentinel, exc) from exc
    finally:
        client.close()


def _reset(
    client: redis.Redis,
    kafka: KafkaPositions,
    layout: WindowLayout,
    target: tuple[str, int | str],
    chosen: list[int],
    yes: bool,
) -> None:
    current = read_positions(client, kafka, layout)
    every = [p.partition for p in current]
    unknown = sorted(set(chosen) - set(every))
    if unknown:
        raise click.BadParameter(
            f"{kafka.topic} has no partition {unknown} (it has {every})", param_hint="--partition"
        )
    if (why := refusal(kafka.group, kafka.members())) is not None:
        raise click.ClickException(why)
    moves = plan_moves(current, _targets(kafka, current, sorted(chosen) or every, target))
    click.echo(moves_text(kafka.topic, moves))
    if not _confirmed(yes):
        sys.exit(1)
    # Checked again: a worker may have started while the plan was read or confirmed.
    if (why := refusal(kafka.group, kafka.members())) is not None:
        raise click.ClickException(why)
    dropped = AppliedOffsets(client, layout, kafka.topic).reset(
        kafka.topic_id(), {m.partition: m.last_applied for m in moves}
    )
    if dropped is not None:
        click.echo(
            f"The window's offsets belonged to an older incarnation of {kafka.topic} "
            f"(topic id {dropped}): dropped, as a worker would have."
        )
    kafka.commit({m.partition: m.after for m in moves})
    click.echo(f"Reset {len(moves)} partition(s) in Redis and in group {kafka.group}'s commits.")
