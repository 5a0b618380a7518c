"""``loginmetrics aggregate``: publish the shared window's totals as metric events, one leader
at a time."""

from __future__ import annotations

import dataclasses
import functools
import logging
import sys

import click

from loginmetrics.aggregator.http_api import ApiSettings
from loginmetrics.aggregator.monitoring import aggregator_monitoring
from loginmetrics.aggregator.process import run_aggregator_in_foreground
from loginmetrics.aggregator.settings import AggregatorSettings
from loginmetrics.cli import options
from loginmetrics.cli.broker import require_topics
from loginmetrics.cli.config import describe_kafka
from loginmetrics.cli.partition_positions import KafkaPositions
from loginmetrics.cli.preflight import describe_redis, require_redis
from loginmetrics.runtime.clients import SentinelConfig
from loginmetrics.window import WindowLayout

logger = logging.getLogger(__name__)


def with_partition_source(
    api: ApiSettings, kafka: dict[str, str], topic: str, group: str
) -> ApiSettings:
    """``api`` with the Kafka side of its status: an AdminClient on ``topic`` and ``group``,
    built in the aggregator process on the first request (a picklable recipe, for ``run``'s
    spawned child)."""
    return dataclasses.replace(
        api, partition_source=functools.partial(KafkaPositions, kafka, topic, group)
    )


def log_aggregator_startup(settings: AggregatorSettings) -> None:
    """One line with everything an operator checks first; secrets masked."""
    layout = settings.layout
    logger.info(
        "aggregator: Redis %s (prefix %s), window %d s in %d s buckets, a metric event every "
        "%g s to %s, lease %g s; Kafka: %s",
        describe_redis(settings.redis_url, settings.redis_sentinel),
        layout.prefix,
        layout.window_seconds,
        layout.bucket_seconds,
        settings.emit_interval_seconds,
        settings.metrics_topic,
        settings.lease_seconds,
        describe_kafka(dict(settings.kafka)),
    )


@click.command()
@options.kafka_connection
@options.redis_connection
@options.window_layout
@options.aggregator_settings
@options.input_topic
@options.group_id
@options.metrics_port
@options.metrics_address
@options.http_api
def aggregate(
    kafka: dict[str, str],
    redis_url: str,
    redis_sentinel: SentinelConfig | None,
    layout: WindowLayout,
    aggregator_settings: AggregatorSettings,
    group_id: str,
    metrics_port: int | None,
    metrics_address: str,
    api_settings: ApiSettings,
) -> None:
    """Publish the sliding window's totals as metric events.

    Every --emit-interval seconds (aligned on the Redis clock) the active
    aggregator reads the --window seconds ending at the last complete bucket
    and produces one metric event to --metrics-topic: message and error
    counts, distinct users and IPs, rates, and device, version and locale
    distributions.

    Run as many as you like for high availability: they share a Redis lease
    and only its holder emits; the others stand by and take over when it
    dies. Each window end is emitted at most once. SIGINT/SIGTERM releases
    the lease and exits 0.

    With --http-port it serves the HTTP API and a live page at / (any range
    of the window, the published history, the status; see docs/api.md);
    --input-topic and --group-id name what its status reports on.
    """
    settings = aggregator_settings
    require_topics(kafka, [settings.metrics_topic])
    require_redis(redis_url, redis_sentinel)
    log_aggregator_startup(settings)
    with aggregator_monitoring(metrics_port, "loginmetrics-aggregator", metrics_address) as probe:
        code = run_aggregator_in_foreground(
            settings,
            probe,
            with_partition_source(api_settings, kafka, settings.input_topic, group_id),
        )
    sys.exit(code)
