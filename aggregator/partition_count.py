"""How many partitions the input topic has, as the broker says: event time waits for every one
of them (or for it to be idle) before a window is complete."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaException

logger = logging.getLogger(__name__)

# Partitions are added rarely; asking again this often notices it without loading the broker.
REFRESH_SECONDS = 30.0
TIMEOUT_SECONDS = 5.0


class PartitionCount:
    """Calls to it answer the partition count, cached; 0 while the broker has not told."""

    def __init__(
        self, client: Any, topic: str, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._client = client  # any confluent-kafka client: list_topics()
        self._topic = topic
        self._clock = clock
        self._count = 0
        self._asked_at: float | None = None

    def __call__(self) -> int:
        now = self._clock()
        if self._asked_at is None or now - self._asked_at >= REFRESH_SECONDS or not self._count:
            self._asked_at = now
            try:
                metadata = self._client.list_topics(self._topic, timeout=TIMEOUT_SECONDS)
                found = metadata.topics.get(self._topic)
                if found is not None and found.error is None:
                    self._count = len(found.partitions)
            except KafkaException as exc:
                logger.warning("could not read the partitions of %s (%s)", self._topic, exc)
        return self._count
