"""``loginmetrics worker``: the pool of consumer processes that fill the window."""

from __future__ import annotations

import logging
import sys

import click

from cli import options
from cli.config import describe_kafka, redact_url
from cli.logs import LogSettings
from window import WindowLayout
from worker.settings import WorkerSettings
from worker.supervisor import Supervisor, worker_specs
from worker.validation import DEFAULT_MAX_MESSAGE_BYTES

logger = logging.getLogger(__name__)


@click.command()
@options.kafka_connection
@options.redis_url
@options.window_layout
@options.input_topic
@options.dlq_topic
@options.group_id
@options.processes
@click.option(
    "--batch-size",
    envvar="LOGINMETRICS_BATCH_SIZE",
    show_envvar=True,
    type=click.IntRange(min=1),
    default=10_000,
    show_default=True,
    help="Most messages taken from Kafka and applied to Redis in one step.",
)
@click.option(
    "--max-message-bytes",
    envvar="LOGINMETRICS_MAX_MESSAGE_BYTES",
    show_envvar=True,
    type=click.IntRange(min=1),
    default=DEFAULT_MAX_MESSAGE_BYTES,
    show_default=True,
    help="Larger messages go to the dead-letter queue as too_large.",
)
@click.pass_obj
def worker(
    logs: LogSettings,
    kafka: dict[str, str],
    redis_url: str,
    layout: WindowLayout,
    input_topic: str,
    dlq_topic: str,
    group_id: str,
    processes: int,
    batch_size: int,
    max_message_bytes: int,
) -> None:
    """Consume login events into the shared Redis window.

    Starts --processes consumer processes in one group. Each validates a batch,
    sends unusable messages to the dead-letter queue and applies the batch to
    Redis in one atomic step that also records the partition offsets, so a crash
    or rebalance never double-counts or loses a message. A process that dies is
    restarted. SIGINT/SIGTERM finishes the current batches and exits 0.
    """
    settings = WorkerSettings(
        kafka=kafka,
        redis_url=redis_url,
        layout=layout,
        input_topic=input_topic,
        dlq_topic=dlq_topic,
        group_id=group_id,
        batch_size=batch_size,
        max_message_bytes=max_message_bytes,
    )
    logger.info(
        "worker pool: %d processes, group %s, %s -> Redis %s (prefix %s), DLQ %s; Kafka: %s",
        processes,
        group_id,
        input_topic,
        redact_url(redis_url),
        layout.prefix,
        dlq_topic,
        describe_kafka(kafka),
    )
    sys.exit(Supervisor(worker_specs(settings, processes), initializer=logs.configure).run())
