"""``loginmetrics print``: show the messages of any topic, without joining a consumer group."""

from __future__ import annotations

import logging
import os
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import click
from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    Consumer,
    KafkaError,
    KafkaException,
    TopicPartition,
)

from loginmetrics.cli import options, render
from loginmetrics.cli.broker import (
    BrokerWatch,
    missing_topic_message,
    topic_partitions,
)
from loginmetrics.cli.config import describe_kafka
from loginmetrics.cli.logs import CommandError
from loginmetrics.runtime.clients import bootstrap_servers

logger = logging.getLogger(__name__)

CONSUME_BATCH = 500
POLL_SECONDS = 0.5
WATERMARK_SECONDS = 10.0


@click.command("print")
@options.kafka_connection
@click.option(
    "--topic",
    envvar="LOGINMETRICS_TOPIC",
    show_envvar=True,
    default="metric-event",
    show_default=True,
    help="Topic to read.",
)
@click.option(
    "--from-beginning",
    envvar="LOGINMETRICS_FROM_BEGINNING",
    show_envvar=True,
    is_flag=True,
    help="Start at the oldest message of each partition instead of new messages only.",
)
@click.option(
    "--partition",
    "partitions",
    envvar="LOGINMETRICS_PARTITION",
    show_envvar=True,
    type=click.IntRange(min=0),
    multiple=True,
    metavar="N",
    show_default="every partition",
    help="Read only this partition; repeat for several.",
)
@click.option(
    "--offset",
    envvar="LOGINMETRICS_OFFSET",
    show_envvar=True,
    type=int,
    default=None,
    metavar="N|-N",
    show_default="new messages only",
    help="Start at offset N of each partition read, or N messages before its end with -N "
    "(--offset=-5: the last 5); kept within the offsets the partition still holds.",
)
@click.option(
    "--max-messages",
    envvar="LOGINMETRICS_MAX_MESSAGES",
    show_envvar=True,
    type=click.IntRange(min=1),
    default=None,
    show_default="no limit",
    help="Stop after this many messages.",
)
@click.option(
    "--timeout",
    envvar="LOGINMETRICS_TIMEOUT",
    show_envvar=True,
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="SECONDS",
    show_default="run until Ctrl-C",
    help="Stop after this long without a message.",
)
@click.option(
    "--pretty/--compact",
    envvar="LOGINMETRICS_PRETTY",
    show_envvar=True,
    default=None,
    show_default="pretty on a terminal, compact when piped",
    help="Indented, coloured JSON with a header per message, or one JSON per line for jq.",
)
@click.option(
    "--table",
    envvar="LOGINMETRICS_TABLE",
    show_envvar=True,
    is_flag=True,
    help="Show each metric event as a table (totals, rates, top 5 locales, devices, "
    "versions), redrawn in place on a terminal.",
)
def print_messages(
    kafka: dict[str, str],
    topic: str,
    partitions: tuple[int, ...],
    offset: int | None,
    from_beginning: bool,
    max_messages: int | None,
    timeout: float | None,
    pretty: bool | None,
    table: bool,
) -> None:
    """Print the messages of any topic (metric events by default) as they arrive.

    Reads with assigned partitions and a throwaway group id, so it never joins a consumer
    group nor commits an offset: it cannot disturb workers or other readers. Messages that
    are not JSON are shown as text, or as base64 when they are not UTF-8, with a marker
    ({"$text": ...} / {"$base64": ...} / {"$tombstone": true} in compact output). Ctrl-C
    stops.

    \b
    Examples:
      loginmetrics print --table
      loginmetrics print --topic dead-letter-queue --from-beginning --max-messages 5
      loginmetrics print --topic user-login --partition 2 --offset=-10 --max-messages 10
      loginmetrics print --topic user-login --timeout 5 | jq -r .locale | sort | uniq -c
    """
    if from_beginning and offset is not None:
        raise click.UsageError("--from-beginning and --offset both say where to start: give one")
    terminal = sys.stdout.isatty()
    show = _shower(pretty if pretty is not None else terminal, table, terminal)
    watch = BrokerWatch(bootstrap_servers(kafka))
    consumer = Consumer(
        {
            "client.id": "loginmetrics-print",
            **kafka,
            **watch.client_config(),
            # Never used to join a group: partitions are assigned, nothing is committed.
            "group.id": f"loginmetrics-print-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
        }
    )
    try:
        read = chosen_partitions(topic_partitions(consumer, topic, watch), partitions, topic)
        if offset is not None:
            starts = [
                TopicPartition(topic, p, offset_from(consumer, topic, p, offset)) for p in read
            ]
            where = ", ".join(f"{tp.partition}@{tp.offset}" for tp in starts)
        else:
            start = OFFSET_BEGINNING if from_beginning else OFFSET_END
            starts = [TopicPartition(topic, p, start) for p in read]
            where = "from the beginning" if from_beginning else "new messages"
        consumer.assign(starts)
        logger.info(
            "printing %s (partitions %s, %s, no consumer group); Kafka: %s",
            topic,
            ",".join(map(str, read)),
            where,
            describe_kafka(kafka),
        )
        _print_loop(consumer, topic, watch.bootstrap_servers, show, max_messages, timeout)
    except KeyboardInterrupt:
        pass  # Ctrl-C is how a reader stops: exit 0, quietly
    except BrokenPipeError:
        # The reader of our output went away (`| head`): stop quietly, and keep Python from
        # failing again when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    finally:
        consumer.close()


def chosen_partitions(existing: list[int], wanted: tuple[int, ...], topic: str) -> list[int]:
    """The partitions to read: ``wanted`` (all when empty), each of which must exist."""
    if not wanted:
        return existing
    missing = sorted(set(wanted) - set(existing))
    if missing:
        raise click.BadParameter(
            f"topic {topic!r} has no partition {', '.join(map(str, missing))} "
            f"(it has {len(existing)}: {', '.join(map(str, existing))})",
            param_hint="'--partition'",
        )
    return sorted(set(wanted))


def offset_within(offset: int, low: int, high: int) -> int:
    """Where ``--offset`` starts in a partition holding offsets ``[low, high)``: ``N`` itself,
    ``-N`` that many before the end; never before the oldest nor after the end."""
    wanted = high + offset if offset < 0 else offset
    return max(low, min(wanted, high))


def offset_from(consumer: Consumer, topic: str, partition: int, offset: int) -> int:
    try:
        low, high = consumer.get_watermark_offsets(
            TopicPartition(topic, partition), timeout=WATERMARK_SECONDS
        )
    except KafkaException as exc:
        raise CommandError(
            f"cannot read which offsets partition {partition} of {topic!r} holds: {exc}"
        ) from exc
    return offset_within(offset, low, high)


def _print_loop(
    consumer: Consumer,
    topic: str,
    bootstrap: str,
    show: Callable[[Any], None],
    max_messages: int | None,
    timeout: float | None,
) -> None:
    printed = 0
    last_message = time.monotonic()
    while max_messages is None or printed < max_messages:
        wanted = (
            CONSUME_BATCH if max_messages is None else min(CONSUME_BATCH, max_messages - printed)
        )
        batch = consumer.consume(wanted, POLL_SECONDS)
        for message in batch:
            error = message.error()
            if error is None:
                show(message)
                printed += 1
            elif error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise CommandError(missing_topic_message(topic, bootstrap))
            elif error.code() != KafkaError._PARTITION_EOF:
                logger.warning("Kafka: %s", error.str())
        if batch:
            sys.stdout.flush()  # a pipe (`| jq`) sees every message as it arrives
            last_message = time.monotonic()
        elif timeout is not None and time.monotonic() - last_message >= timeout:
            logger.info("no message for %g s: stopping", timeout)
            return


def _shower(pretty: bool, table: bool, terminal: bool) -> Callable[[Any], None]:
    """The function that writes one message to stdout in the chosen form."""

    def show(message: Any) -> None:
        payload = render.decode_payload(message.value())
        if table and (event := render.as_metric_event(payload)) is not None:
            if terminal:
                click.clear()
            click.echo(render.metric_table(event) + ("" if terminal else "\n"))
            return
        if not pretty:
            click.echo(render.compact(payload))
            return
        timestamp_type, timestamp_ms = message.timestamp()
        click.echo(
            render.header(
                message.topic(),
                message.partition(),
                message.offset(),
                timestamp_ms if timestamp_type else 0,
                message.key(),
            )
        )
        click.echo(render.pretty(payload))

    return show
