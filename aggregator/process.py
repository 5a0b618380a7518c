"""Entry points of the aggregator: a child process of ``loginmetrics run``'s supervisor, or
the foreground ``loginmetrics aggregate``. Each builds its own Redis and Kafka clients."""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from types import FrameType

from confluent_kafka import Producer

from aggregator.lease import AggregatorLease
from aggregator.service import Aggregator
from aggregator.settings import AggregatorSettings
from window import WindowReader
from worker.process import kafka_error_logger, redis_client, start_supervised_child

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FORCED = 130


def run_aggregator(settings: AggregatorSettings, stop: threading.Event) -> None:
    """Build this process's clients and run the aggregator loop until ``stop`` is set."""
    bootstrap = str(settings.kafka.get("bootstrap.servers", "?"))
    producer = Producer(
        {
            **settings.producer_config(),
            "client.id": f"loginmetrics-aggregator-{os.getpid()}",
            "error_cb": kafka_error_logger(bootstrap),
        }
    )
    client = redis_client(settings.redis_url)
    try:
        lease = AggregatorLease(client, settings.layout, settings.lease_seconds)
        reader = WindowReader(client, settings.layout)
        Aggregator(settings, producer, reader, lease, stop).run()
    finally:
        client.close()


def run_aggregator_process(
    settings: AggregatorSettings, initializer: Callable[[], None] | None = None
) -> None:
    """Child-process target (``worker.supervisor.ChildSpec``): runs until SIGTERM, exits 0."""
    stop = start_supervised_child(initializer)
    logger.info("aggregator process started (pid %d)", os.getpid())
    run_aggregator(settings, stop)


def run_aggregator_in_foreground(settings: AggregatorSettings) -> int:
    """``loginmetrics aggregate``: SIGINT or SIGTERM stops gracefully (exit 0: lease released,
    events flushed); a second one stops at once (exit 130)."""
    stop = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if stop.is_set():
            logger.warning("second %s: stopping now", name)
            raise SystemExit(EXIT_FORCED)
        logger.info("%s: stopping (send it again to stop at once)", name)
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        run_aggregator(settings, stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return EXIT_OK
