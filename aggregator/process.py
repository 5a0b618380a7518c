"""Entry points of the aggregator: a child process of ``loginmetrics run``'s supervisor, or
the foreground ``loginmetrics aggregate``. Each builds its own Redis and Kafka clients."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from functools import partial

from confluent_kafka import Producer

from loginmetrics.aggregator.history import EventHistory
from loginmetrics.aggregator.http_api import ApiSettings
from loginmetrics.aggregator.lease import AggregatorLease
from loginmetrics.aggregator.monitoring import http_api_serving
from loginmetrics.aggregator.partition_count import PartitionCount
from loginmetrics.aggregator.published_events import published_events
from loginmetrics.aggregator.service import Aggregator
from loginmetrics.aggregator.settings import AggregatorSettings
from loginmetrics.runtime.clients import kafka_client_config, redis_client
from loginmetrics.runtime.health import LoopProbe
from loginmetrics.runtime.http_probe import child_probe
from loginmetrics.runtime.redis_errors import exit_when_fatal
from loginmetrics.runtime.signals import EXIT_OK, graceful_stop, start_supervised_child
from loginmetrics.window import Role, WindowReader, await_layout_agreement
from loginmetrics.window.event_clock import EventClock
from loginmetrics.window.layout import TimeBasis
from loginmetrics.window.ranges import RangeReader
from loginmetrics.window.rollup import Rollup

logger = logging.getLogger(__name__)


def run_aggregator(
    settings: AggregatorSettings,
    stop: threading.Event,
    probe: LoopProbe | None = None,
    api: ApiSettings | None = None,
) -> None:
    """Build this process's clients and run the aggregator loop until ``stop`` is set, serving
    the HTTP API meanwhile when ``api`` has a port."""
    api = api if api is not None else ApiSettings()
    producer = Producer(
        kafka_client_config(
            settings.producer_config(), settings.kafka, f"loginmetrics-aggregator-{os.getpid()}"
        )
    )
    client = redis_client(settings.redis_url, settings.redis_sentinel)
    try:
        if await_layout_agreement(client, settings.layout, Role.AGGREGATOR, stop, probe) is None:
            return  # stopped while Redis did not answer
        lease = AggregatorLease(client, settings.layout, settings.lease_seconds)
        # Read no more values than an event lists (the rest is summed under "__other__").
        reader = WindowReader(client, settings.layout, max_values=settings.max_distribution_values)
        event_clock = (
            EventClock(client, settings.layout, settings.input_topic)
            if settings.layout.time_basis is TimeBasis.EVENT
            else None
        )
        history = EventHistory(client, settings.layout, api.history_seconds)
        with http_api_serving(client, settings, api, history):
            Aggregator(
                settings,
                producer,
                reader,
                lease,
                stop,
                probe=probe,
                event_clock=event_clock,
                input_partitions=PartitionCount(producer, settings.input_topic),
                history=history,
                ranges=RangeReader(
                    client, settings.layout, max_values=settings.max_distribution_values
                ),
                rollup=Rollup(client, settings.layout),
                published=partial(
                    published_events,
                    kafka_client_config(
                        settings.kafka, settings.kafka, f"loginmetrics-check-{os.getpid()}"
                    ),
                    settings.metrics_topic,
                    settings.layout.prefix.encode(),
                ),
            ).run()
    finally:
        client.close()


def run_aggregator_process(
    settings: AggregatorSettings,
    api: ApiSettings | None = None,
    initializer: Callable[[], None] | None = None,
) -> None:
    """Child-process target (``runtime.supervisor.ChildSpec``): runs until SIGTERM, exits 0;
    exits ``EXIT_FATAL`` (not restarted) when Redis refuses in a way no retry can fix."""
    stop = start_supervised_child(initializer)
    logger.info("aggregator process started (pid %d)", os.getpid())
    with exit_when_fatal():
        run_aggregator(settings, stop, child_probe(), api)


def run_aggregator_in_foreground(
    settings: AggregatorSettings, probe: LoopProbe | None = None, api: ApiSettings | None = None
) -> int:
    """``loginmetrics aggregate``: SIGINT or SIGTERM stops gracefully (exit 0: lease released,
    events flushed); a second one stops at once (exit 130); a Redis refusal no retry can fix
    exits 78 after one ERROR line."""
    with graceful_stop() as stop, exit_when_fatal():
        run_aggregator(settings, stop, probe, api)
    return EXIT_OK
