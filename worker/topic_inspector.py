"""What the broker says about the input topic now: its id (which incarnation it is) and where
its partitions end. Asked on every assignment; answers None when the broker does not tell."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from confluent_kafka import KafkaException, TopicCollection, TopicPartition
from confluent_kafka.admin import AdminClient

logger = logging.getLogger(__name__)

TIMEOUT_SECONDS = 5.0


class TopicInspector(Protocol):
    def topic_id(self) -> str | None: ...
    def high_watermarks(self, partitions: Iterable[int]) -> dict[int, int]: ...


class KafkaTopicInspector:
    """An AdminClient for the topic id, the worker's consumer for the watermarks."""

    def __init__(self, kafka: Mapping[str, Any], consumer: Any, topic: str) -> None:
        self._admin = AdminClient(dict(kafka))
        self._consumer = consumer
        self._topic = topic

    def topic_id(self) -> str | None:
        try:
            futures = self._admin.describe_topics(
                TopicCollection([self._topic]), request_timeout=TIMEOUT_SECONDS
            )
            description = futures[self._topic].result(timeout=TIMEOUT_SECONDS)
        except (KafkaException, TimeoutError) as exc:
            # e.g. no Describe permission on the topic: the incarnation check is skipped.
            logger.warning("could not read the id of topic %s (%s)", self._topic, exc)
            return None
        return str(description.topic_id)

    def high_watermarks(self, partitions: Iterable[int]) -> dict[int, int]:
        highs = {}
        for partition in partitions:
            try:
                _low, high = self._consumer.get_watermark_offsets(
                    TopicPartition(self._topic, partition), timeout=TIMEOUT_SECONDS
                )
            except KafkaException as exc:
                logger.warning("could not read where %s[%d] ends (%s)", self._topic, partition, exc)
                continue
            highs[partition] = int(high)
        return highs
