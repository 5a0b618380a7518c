"""``loginmetrics run``: the worker pool and the aggregator as one application, one Ctrl-C."""

from __future__ import annotations

import sys

import click

from loginmetrics.aggregator.http_api import ApiSettings
from loginmetrics.aggregator.process import run_aggregator_process
from loginmetrics.aggregator.settings import AggregatorSettings
from loginmetrics.cli import options
from loginmetrics.cli.aggregate_command import log_aggregator_startup, with_partition_source
from loginmetrics.cli.broker import require_topics
from loginmetrics.cli.logs import LogSettings
from loginmetrics.cli.preflight import require_redis
from loginmetrics.cli.worker_command import log_worker_startup
from loginmetrics.runtime.clients import SentinelConfig
from loginmetrics.runtime.http_probe import pool_monitoring
from loginmetrics.runtime.supervisor import ChildSpec, Supervisor
from loginmetrics.window import WindowLayout
from loginmetrics.worker.process import worker_specs
from loginmetrics.worker.settings import WorkerSettings

AGGREGATOR_PROCESS = "loginmetrics-aggregator"


@click.command()
@options.kafka_connection
@options.redis_connection
@options.window_layout
@options.worker_settings
@options.aggregator_settings
@options.processes
@options.metrics_port
@options.metrics_address
@options.http_api
@click.pass_obj
def run(
    logs: LogSettings,
    kafka: dict[str, str],
    redis_url: str,
    redis_sentinel: SentinelConfig | None,
    layout: WindowLayout,
    worker_settings: WorkerSettings,
    aggregator_settings: AggregatorSettings,
    processes: int,
    metrics_port: int | None,
    metrics_address: str,
    api_settings: ApiSettings,
) -> None:
    """Run the whole pipeline: --processes workers and the aggregator.

    The single-application mode of `loginmetrics worker` plus `loginmetrics
    aggregate`: one supervisor starts both, restarts a process that dies, and
    on Ctrl-C (or SIGTERM) drains them all and exits 0. Watch the result with
    `loginmetrics print --table` and feed it with `loginmetrics generate`,
    or with --http-port open the live page (see docs/api.md).
    """
    worker, aggregator = worker_settings, aggregator_settings
    require_topics(kafka, [worker.input_topic, worker.dlq_topic, aggregator.metrics_topic])
    require_redis(redis_url, redis_sentinel)
    log_worker_startup(worker, processes)
    log_aggregator_startup(aggregator)
    specs = [
        *worker_specs(worker, processes),
        ChildSpec(
            AGGREGATOR_PROCESS,
            run_aggregator_process,
            (
                aggregator,
                with_partition_source(api_settings, kafka, worker.input_topic, worker.group_id),
            ),
        ),
    ]
    with pool_monitoring(metrics_port, [spec.name for spec in specs], metrics_address) as monitor:
        supervisor = Supervisor(
            specs,
            initializer=logs.with_registered_secrets().configure,
            on_exit=monitor.child_exited if monitor else None,
        )
        code = supervisor.run()
    sys.exit(code)
