"""The Kafka side of where the input topic's partitions stand (watermarks, topic id, the group's
members and commits) for ``status`` and ``offsets``; the positions themselves are
``aggregator.partition_positions``'s, which the HTTP API shows too."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future
from typing import Any, TypeVar

import click
from confluent_kafka import (
    ConsumerGroupTopicPartitions,
    KafkaException,
    TopicCollection,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, OffsetSpec

# Re-exported: offsets_command and its tests take them from here.
from loginmetrics.aggregator.partition_positions import GroupMembers as GroupMembers
from loginmetrics.aggregator.partition_positions import PartitionPosition as PartitionPosition
from loginmetrics.aggregator.partition_positions import positions as positions
from loginmetrics.cli.broker import BrokerWatch, topic_partitions
from loginmetrics.runtime.clients import bootstrap_servers

ADMIN_TIMEOUT_SECONDS = 15.0
T = TypeVar("T")


def _result(future: Future[T], what: str) -> T:
    try:
        return future.result(timeout=ADMIN_TIMEOUT_SECONDS)
    except (KafkaException, TimeoutError) as exc:
        raise click.ClickException(f"Kafka could not {what}: {exc}") from exc


class KafkaPositions:
    """The Kafka side, through one AdminClient the command builds."""

    def __init__(self, kafka: Mapping[str, str], topic: str, group: str) -> None:
        self.topic = topic
        self.group = group
        self._watch = BrokerWatch(bootstrap_servers(kafka))
        self._admin = AdminClient({**kafka, **self._watch.client_config()})

    def partitions(self) -> list[int]:
        """The topic's partition ids; a ``ClickException`` saying what to do when the broker
        does not answer or the topic does not exist."""
        return topic_partitions(self._admin, self.topic, self._watch)

    def topic_id(self) -> str | None:
        futures = self._admin.describe_topics(
            TopicCollection([self.topic]), request_timeout=ADMIN_TIMEOUT_SECONDS
        )
        return str(_result(futures[self.topic], f"describe topic {self.topic}").topic_id)

    def offsets(self, partitions: Iterable[int], spec: Callable[[], Any]) -> dict[int, int]:
        """Each partition's offset for ``spec`` (``OffsetSpec.earliest`` and so on)."""
        request = {TopicPartition(self.topic, p): spec() for p in partitions}
        futures = self._admin.list_offsets(request, request_timeout=ADMIN_TIMEOUT_SECONDS)
        return {
            tp.partition: int(_result(future, f"list offsets of {self.topic}").offset)
            for tp, future in futures.items()
        }

    def watermarks(self, partitions: list[int]) -> dict[int, tuple[int, int]]:
        lows = self.offsets(partitions, OffsetSpec.earliest)
        highs = self.offsets(partitions, OffsetSpec.latest)
        return {p: (lows[p], highs[p]) for p in partitions}

    def offsets_at(self, partitions: list[int], epoch_ms: int) -> dict[int, int]:
        """The first offset of each partition at or after ``epoch_ms``; the end of the log for a
        partition with no message that late."""
        found = self.offsets(partitions, lambda: OffsetSpec.for_timestamp(epoch_ms))
        highs = self.offsets([p for p, o in found.items() if o < 0], OffsetSpec.latest)
        return {p: highs.get(p, offset) if offset < 0 else offset for p, offset in found.items()}

    def members(self) -> GroupMembers:
        futures = self._admin.describe_consumer_groups(
            [self.group], request_timeout=ADMIN_TIMEOUT_SECONDS
        )
        description = _result(futures[self.group], f"describe consumer group {self.group}")
        members = tuple(f"{m.client_id} on {m.host}" for m in description.members)
        return GroupMembers(str(description.state.name).lower(), members)

    def committed(self, partitions: list[int]) -> dict[int, int | None]:
        request = ConsumerGroupTopicPartitions(
            self.group, [TopicPartition(self.topic, p) for p in partitions]
        )
        futures = self._admin.list_consumer_group_offsets(
            [request], request_timeout=ADMIN_TIMEOUT_SECONDS
        )
        result = _result(futures[self.group], f"list the commits of group {self.group}")
        return {
            tp.partition: tp.offset if tp.offset >= 0 else None for tp in result.topic_partitions
        }

    def commit(self, next_offsets: Mapping[int, int]) -> None:
        """Set the group's committed offsets (only while the group has no member)."""
        request = ConsumerGroupTopicPartitions(
            self.group,
            [TopicPartition(self.topic, p, offset) for p, offset in sorted(next_offsets.items())],
        )
        futures = self._admin.alter_consumer_group_offsets(
            [request], request_timeout=ADMIN_TIMEOUT_SECONDS
        )
        result = _result(futures[self.group], f"commit offsets for group {self.group}")
        refused = [tp for tp in result.topic_partitions if tp.error is not None]
        if refused:
            raise click.ClickException(
                f"Kafka refused the commit of {', '.join(str(tp) for tp in refused)}"
            )
