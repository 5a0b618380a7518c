"""Produces metric events to Kafka: idempotent, batched, keyed by the window's Redis prefix."""

from __future__ import annotations

import logging
from typing import Any

from confluent_kafka import Producer

from loginmetrics.aggregator.metric_event import MetricEvent, encode_metric_event

logger = logging.getLogger(__name__)


class MetricPublisher:
    """One producer per aggregator process. Events share a key (the window's Redis prefix), so
    all of one window's events land in one partition, in order, for a consumer to follow."""

    def __init__(
        self, producer: Producer, topic: str, key: str, flush_timeout_seconds: float
    ) -> None:
        self._producer = producer
        self._topic = topic
        self._key = key.encode()
        self._flush_timeout = flush_timeout_seconds

    def publish(self, event: MetricEvent) -> bool:
        """Hand the event to the producer and wait a bounded time for the broker's ack; True
        when the broker acknowledged it by then.

        Raises BufferError or KafkaException when the producer did not take the event; once
        taken, librdkafka retries it (idempotently) until ``message.timeout.ms``.
        """
        window_end = event.window_end
        acknowledged = []

        def on_delivery(error: Any, _message: Any) -> None:
            if error is None:
                acknowledged.append(True)
            else:
                logger.error(
                    "metric event of the window ending %s was not delivered to %s: %s",
                    window_end,
                    self._topic,
                    error,
                )

        self._producer.produce(
            self._topic, encode_metric_event(event), self._key, on_delivery=on_delivery
        )
        pending = self._producer.flush(self._flush_timeout)
        if pending:
            logger.warning(
                "%d metric event(s) not yet acknowledged by Kafka after %.1f s; "
                "still retrying in the background",
                pending,
                self._flush_timeout,
            )
        return bool(acknowledged)

    def close(self, timeout_seconds: float = 10.0) -> None:
        pending = self._producer.flush(timeout_seconds)
        if pending:
            logger.error("%d metric event(s) were never acknowledged by Kafka", pending)
