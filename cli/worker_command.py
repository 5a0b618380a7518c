"""``loginmetrics worker``: the pool of consumer processes that fill the window."""

from __future__ import annotations

import logging
import sys

import click

from loginmetrics.cli import options
from loginmetrics.cli.broker import require_topics
from loginmetrics.cli.config import describe_kafka
from loginmetrics.cli.logs import LogSettings
from loginmetrics.cli.preflight import describe_redis, require_redis
from loginmetrics.runtime.clients import SentinelConfig
from loginmetrics.runtime.crash_loop import CrashLoop
from loginmetrics.runtime.http_probe import pool_monitoring
from loginmetrics.runtime.supervisor import Supervisor
from loginmetrics.window import WindowLayout
from loginmetrics.worker.process import worker_specs
from loginmetrics.worker.settings import WorkerSettings

logger = logging.getLogger(__name__)


@click.command()
@options.kafka_connection
@options.redis_connection
@options.window_layout
@options.worker_settings
@options.processes
@options.metrics_port
@options.metrics_address
@click.pass_obj
def worker(
    logs: LogSettings,
    kafka: dict[str, str],
    redis_url: str,
    redis_sentinel: SentinelConfig | None,
    layout: WindowLayout,
    worker_settings: WorkerSettings,
    processes: int,
    metrics_port: int | None,
    metrics_address: str,
) -> None:
    """Consume login events into the shared Redis window.

    Starts --processes consumer processes in one group. Each validates a batch,
    sends unusable messages to the dead-letter queue and applies the batch to
    Redis in one atomic step that also records the partition offsets, so a crash
    or rebalance never double-counts or loses a message. A process that dies is
    restarted. SIGINT/SIGTERM finishes the current batches and exits 0.
    """
    settings = worker_settings
    require_topics(kafka, [settings.input_topic, settings.dlq_topic])
    require_redis(redis_url, redis_sentinel)
    log_worker_startup(settings, processes)
    specs = worker_specs(settings, processes)
    # One process per pod: a child that keeps dying ends the pod, for Kubernetes to see.
    crash_loop = CrashLoop() if processes == 1 else None
    with pool_monitoring(metrics_port, [spec.name for spec in specs], metrics_address) as monitor:
        supervisor = Supervisor(
            specs,
            initializer=logs.with_registered_secrets().configure,
            crash_loop=crash_loop,
            on_exit=monitor.child_exited if monitor else None,
        )
        code = supervisor.run()
    sys.exit(code)


def log_worker_startup(settings: WorkerSettings, processes: int) -> None:
    """One line with everything an operator checks first (shared with ``loginmetrics run``)."""
    logger.info(
        "worker pool: %d processes, group %s, %s -> Redis %s (prefix %s), DLQ %s; Kafka: %s",
        processes,
        settings.group_id,
        settings.input_topic,
        describe_redis(settings.redis_url, settings.redis_sentinel),
        settings.layout.prefix,
        settings.dlq_topic,
        describe_kafka(dict(settings.kafka)),
    )
