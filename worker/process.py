"""Entry point of one worker OS process: builds its own clients, runs the batch loop."""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

import redis
from confluent_kafka import Consumer, Producer

from window import WindowWriter
from worker.settings import WorkerSettings
from worker.window_consumer import WindowConsumer

logger = logging.getLogger(__name__)


def kafka_error_logger(bootstrap: str) -> Callable[[Any], None]:
    """librdkafka's error callback, worded for an operator."""

    def log_error(error: Any) -> None:
        if error.code() in (-195, -187):  # _TRANSPORT, _ALL_BROKERS_DOWN
            logger.error(
                "Kafka at %s not reachable (%s); is the broker running? Locally: `make stack-up`",
                bootstrap,
                error.str(),
            )
        else:
            logger.error("Kafka error: %s", error.str())

    return log_error


def redis_client(url: str) -> redis.Redis:
    return redis.Redis.from_url(
        url, socket_timeout=5, socket_connect_timeout=5, health_check_interval=30
    )


def start_supervised_child(initializer: Callable[[], None] | None) -> threading.Event:
    """Set up a process the supervisor spawned; the returned event is set by SIGTERM.

    Ctrl-C reaches the whole process group, so children ignore SIGINT: the supervisor alone
    decides what it means, and tells each child with SIGTERM.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if initializer is not None:
        initializer()
    stop = threading.Event()

    def request_stop(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    return stop


def run_worker_process(
    settings: WorkerSettings, index: int, initializer: Callable[[], None] | None = None
) -> None:
    """Run until SIGTERM: finish the current batch, commit, leave the group, exit 0."""
    stop = start_supervised_child(initializer)
    bootstrap = str(settings.kafka.get("bootstrap.servers", "?"))
    error_cb = kafka_error_logger(bootstrap)
    client_id = f"loginmetrics-worker-{index}-{os.getpid()}"
    consumer = Consumer(
        {**settings.consumer_config(), "client.id": client_id, "error_cb": error_cb}
    )
    producer = Producer(
        {**settings.dlq_producer_config(), "client.id": client_id, "error_cb": error_cb}
    )
    writer = WindowWriter(redis_client(settings.redis_url), settings.layout, settings.input_topic)
    logger.info("worker %d started (pid %d)", index, os.getpid())
    WindowConsumer(settings, consumer, producer, writer, stop).run()
