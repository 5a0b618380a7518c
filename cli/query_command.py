"""``loginmetrics query``: the metric event of any range still held in the window store."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import click
import msgspec
import redis

from loginmetrics.aggregator.api_parameters import ParameterError, parse_duration, parse_moment
from loginmetrics.aggregator.metric_event import build_metric_event, encode_metric_event, epoch_iso
from loginmetrics.cli import options, render
from loginmetrics.cli.preflight import describe_redis
from loginmetrics.runtime.clients import SentinelConfig, redis_client
from loginmetrics.window import BadRangeError, RangeAnswer, RangeReader, WindowLayout, read_layout
from loginmetrics.window.layout import TimeBasis


def reading_layout(client: redis.Redis, layout: WindowLayout) -> WindowLayout:
    """``layout`` with the bucket length and kept window the workers recorded, when they did:
    which second buckets exist is theirs to say, not this command's options."""
    recorded = read_layout(client, layout)
    bucket = recorded.bucket_seconds or layout.bucket_seconds
    kept = recorded.kept_window_seconds or layout.window_seconds
    return WindowLayout(
        prefix=layout.prefix,
        bucket_seconds=bucket,
        window_seconds=kept,
        time_basis=TimeBasis(recorded.time_basis or layout.time_basis),
        retention_seconds=max(layout.retention_seconds, kept),
    )


def asked_range(
    last: str | None, start: str | None, end: str | None, newest_end: int
) -> tuple[int, int]:
    """``[start, end)`` in epoch seconds from ``--last`` (ending at ``newest_end``, the end of
    the last complete bucket) or from ``--from`` and ``--to`` (widened to whole seconds)."""
    if last is not None:
        if start is not None or end is not None:
            raise click.UsageError("give either --last, or --from and --to, not both")
        try:
            return newest_end - parse_duration(last, "--last"), newest_end
        except ParameterError as exc:
            raise click.BadParameter(str(exc), param_hint="'--last'") from exc
    if start is None or end is None:
        raise click.UsageError("give --last (e.g. --last 15m), or --from and --to")
    try:
        return math.floor(parse_moment(start, "--from")), math.ceil(parse_moment(end, "--to"))
    except ParameterError as exc:
        raise click.UsageError(str(exc)) from exc


def rounding_note(answer: RangeAnswer) -> str:
    totals = answer.totals
    return (
        f"asked {epoch_iso(answer.requested_start)} to {epoch_iso(answer.requested_end)}, "
        f"answered {epoch_iso(totals.start)} to {epoch_iso(totals.end)}: the seconds at the "
        "edges are no longer kept, so the range was widened to whole minutes (buckets)"
    )


@click.command()
@options.redis_connection
@options.window_layout
@click.option(
    "--last",
    envvar="LOGINMETRICS_LAST",
    show_envvar=True,
    default=None,
    metavar="DURATION",
    help="The range ending now (at the last complete bucket): 90s, 15m, 1h, 1d.",
)
@click.option(
    "--from",
    "start",
    envvar="LOGINMETRICS_FROM",
    show_envvar=True,
    default=None,
    metavar="TIME",
    help="Start of the range: ISO-8601 (UTC unless it says otherwise) or epoch seconds.",
)
@click.option(
    "--to",
    "end",
    envvar="LOGINMETRICS_TO",
    show_envvar=True,
    default=None,
    metavar="TIME",
    help="End of the range (exclusive), as --from.",
)
@click.option(
    "--table",
    is_flag=True,
    help="Show the metric event as a table, like 'print --table', instead of JSON.",
)
@options.max_distribution_values
def query(
    redis_url: str,
    redis_sentinel: SentinelConfig | None,
    layout: WindowLayout,
    last: str | None,
    start: str | None,
    end: str | None,
    table: bool,
    max_distribution_values: int,
) -> None:
    """Print the metric event of any range still held in the window store.

    The range is read from the coarsest buckets that tile it: hours and
    minutes rolled up by the leading aggregator, second buckets at the
    edges. Where the seconds at an edge are gone (past --window), the edge
    is widened to its minute; stderr says so and window_start/window_end
    give the range read. A range older than --retention or ending in the
    future is refused (exit 2); Redis not answering exits 1.

    Only --redis-prefix and --retention of the window options matter: the
    bucket length and the kept window are read from the recorded layout.

    \b
    Examples:
      loginmetrics query --last 15m
      loginmetrics query --last 1h --table
      loginmetrics query --from 2025-01-21T00:00:00 --to 2025-01-21T06:00:00
      loginmetrics query --from 1737417600 --to 1737421200 | jq .active_users
    """
    client = redis_client(redis_url, redis_sentinel)
    try:
        reading = reading_layout(client, layout)
        reader = RangeReader(client, reading)
        newest_end = reading.bucket_start(reader.server_time())
        first, after = asked_range(last, start, end, newest_end)
        answer = reader.read(first, after)
    except BadRangeError as exc:
        raise click.UsageError(str(exc)) from exc
    except redis.RedisError as exc:
        raise click.ClickException(
            f"Redis at {describe_redis(redis_url, redis_sentinel)} did not answer: {exc}"
        ) from exc
    finally:
        client.close()
    if answer.rounded:
        click.echo(rounding_note(answer), err=True)
    event = build_metric_event(
        answer.totals,
        datetime.now(UTC),
        reading.bucket_seconds,
        max_distribution_values,
        time_basis=reading.time_basis,
    )
    encoded = encode_metric_event(event)
    if not table:
        click.echo(encoded.decode())
        return
    click.echo(render.metric_table(msgspec.json.decode(encoded, type=render.MetricEventView)))
