"""Moves partitions to where the window is: a partition just assigned (or whose position was reset
under it) is checked against the input topic's incarnation and end, a rewinding one reads the
window's offset again, and then the consumer seeks. Runs in the batch loop, never inside a
rebalance callback; every failure is ``RetryLater`` and what is left stays in its phase."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Protocol

from confluent_kafka import OFFSET_BEGINNING, KafkaException

from loginmetrics.window import WindowWriter
from loginmetrics.worker.metrics import WorkerMetrics
from loginmetrics.worker.offset_checks import skipped_offsets, truncated_partitions
from loginmetrics.worker.owned_partitions import STAY, OwnedPartitions, Phase
from loginmetrics.worker.retry import RetryLater, call_redis
from loginmetrics.worker.topic_inspector import TopicInspector

logger = logging.getLogger(__name__)


class Seeker(Protocol):
    """What moving partitions asks of the Kafka consumer (``worker.consumer_shell``)."""

    def seek(self, partition: int, offset: int) -> None: ...
    def committed(self, partitions: list[int]) -> dict[int, int | None]: ...


class Positions:
    def __init__(
        self,
        owned: OwnedPartitions,
        writer: WindowWriter,
        consumer: Seeker,
        topic: str,
        metrics: WorkerMetrics,
        inspector: TopicInspector | None = None,
    ) -> None:
        self._owned = owned
        self._writer = writer
        self._consumer = consumer
        self._topic = topic
        self._metrics = metrics
        # Checks the window's offsets against the topic on placement (None: trusted).
        self._inspector = inspector

    def move(self) -> None:
        """Place, rewind and seek every partition that needs it; raises ``RetryLater`` while
        Redis, the broker or a seek fails."""
        if self._owned.in_phase(Phase.PLACING):
            self._place()
        if self._owned.in_phase(Phase.REWINDING):
            self._rewind()
        if self._owned.seeks():
            self._seek()

    def check_applied(self) -> None:
        """Rewind every partition whose applied offset the window no longer holds: it went
        back (or is gone) since this process applied it, so Redis lost those writes. One the
        window holds further on is another worker's now: the compare-and-set handles it."""
        ours = {p: o for p, o in self._owned.consuming().items() if o is not None}
        if not ours:
            return
        stored = call_redis(
            lambda: self._writer.applied_offsets(list(ours)), "check applied offsets"
        )
        for partition, last in ours.items():
            theirs = stored[partition]
            if theirs is None or theirs < last:
                self._owned.rewind(partition, fallback=last + 1)

    def went_back(self, behind: Mapping[int, int], applied: Mapping[int, int | None]) -> None:
        """The consumer delivered offsets at or below the applied ones (``behind``: partition
        -> the first of them): its position was reset under the worker. Placed again."""
        for partition, offset in behind.items():
            logger.warning(
                "partition %d: the consumer went back to offset %d, though the window applied "
                "up to %s (its position was reset: an offset out of range, a truncated or "
                "recreated topic); placing it again as on assignment",
                partition,
                offset,
                applied[partition],
            )
            self._owned.replace(partition)

    def count_gaps(
        self, applied: Mapping[int, int | None], first_offsets: Mapping[int, int]
    ) -> None:
        """Log and count the offsets between the applied ones and the first ones consumed."""
        for partition, count in skipped_offsets(applied, first_offsets).items():
            logger.warning(
                "partition %d: %d offsets after %s were removed (retention or truncation) "
                "before they were read; they are not in the window",
                partition,
                count,
                applied[partition],
            )
            self._metrics.offsets_skipped(count)

    # -- placing ---------------------------------------------------------------------------

    def _place(self) -> None:
        recreated = self._adopt_topic()
        placing = self._owned.in_phase(Phase.PLACING)
        applied = call_redis(lambda: self._writer.applied_offsets(placing), "read applied offsets")
        applied = self._restart_truncated(applied)
        marks = call_redis(lambda: self._writer.watermarks(placing), "read watermarks")
        unread = [p for p in placing if applied[p] is None]
        committed = self._committed(unread) if unread and not recreated else {}
        for partition in placing:
            last = applied[partition]
            if last is not None:
                target = last + 1  # the window, not Kafka's commit, says where it stands
            elif recreated:
                target = OFFSET_BEGINNING  # not the old incarnation's committed offset
            else:
                stands = committed.get(partition)  # none committed: auto.offset.reset, earliest
                target = OFFSET_BEGINNING if stands is None else stands
            self._owned.place(partition, last, target, marks[partition])
        logger.info("placed %s", ", ".join(f"{self._topic}[{p}]@{applied[p]}" for p in placing))

    def _adopt_topic(self) -> bool:
        """Tie the window's offsets to this incarnation of the input topic; True when it is a
        new one: the old offsets are dropped and every partition is read from its start."""
        topic_id = self._inspector.topic_id() if self._inspector else None
        if topic_id is None:
            return False
        incarnation = call_redis(lambda: self._writer.adopt_topic(topic_id), "adopt the topic")
        # Another worker may have told Redis first: this one's own state is just as old.
        outdated = self._owned.adopt(topic_id)
        if incarnation is None and not outdated:
            return False
        logger.warning(
            "topic %s was recreated (its id is %s, the window's offsets were for %s): reading it "
            "from its start; the old offsets %s are dropped",
            self._topic,
            topic_id,
            incarnation.old_topic_id if incarnation else "an older one",
            incarnation.dropped_offsets
            if incarnation and incarnation.dropped_offsets
            else "(none)",
        )
        self._owned.forget_all()
        return True

    def _restart_truncated(self, applied: dict[int, int | None]) -> dict[int, int | None]:
        """``applied`` with every partition that now ends before its applied offset moved back
        to its end (in Redis too), each logged and counted as a gap."""
        if self._inspector is None:
            return applied
        highs = self._inspector.high_watermarks(p for p, o in applied.items() if o is not None)
        for cut in truncated_partitions(applied, highs):
            moved = call_redis(
                lambda cut=cut: self._writer.restart_partition(  # type: ignore[misc]
                    cut.partition, cut.stored, cut.restart_at
                ),
                "restart a truncated partition",
            )
            if not moved:
                continue  # someone else moved it meanwhile; the compare-and-set will tell
            logger.warning(
                "partition %d ends at offset %d but the window applied up to %d: its log was "
                "truncated or replaced; %d offsets counted as a gap, reading on from %d",
                cut.partition,
                cut.high,
                cut.stored,
                cut.gap,
                cut.high,
            )
            self._metrics.offsets_skipped(cut.gap)
            applied[cut.partition] = cut.restart_at
        return applied

    def _committed(self, partitions: list[int]) -> dict[int, int | None]:
        try:
            return self._consumer.committed(partitions)
        except KafkaException as exc:
            raise RetryLater(
                f"could not read the committed offsets of partitions {partitions} ({exc})",
                "the consumer group coordinator",
            ) from exc

    # -- rewinding -------------------------------------------------------------------------

    def _rewind(self) -> None:
        rewinding = self._owned.in_phase(Phase.REWINDING)
        stored = call_redis(lambda: self._writer.applied_offsets(rewinding), "read applied offsets")
        if any(stored[p] is None for p in rewinding) and self._adopt_topic():
            return  # the offsets went with a recreated topic: every partition starts over
        marks = call_redis(lambda: self._writer.watermarks(rewinding), "read watermarks")
        for partition in rewinding:
            ours = self._owned.rewound(partition, stored[partition], marks[partition])
            _report_rewind(partition, ours, stored[partition], self._owned.seeks()[partition])

    # -- seeking ---------------------------------------------------------------------------

    def _seek(self) -> None:
        refused = []
        for partition, offset in self._owned.seeks().items():
            if offset is not STAY:
                try:
                    self._consumer.seek(partition, offset)
                except KafkaException as exc:
                    # Still ours: consuming on from where it is would skip messages.
                    logger.warning(
                        "could not rewind partition %d to offset %d: %s", partition, offset, exc
                    )
                    refused.append(partition)
                    continue
            self._owned.sought(partition)
        if refused:
            raise RetryLater(f"partitions {refused} not rewound", "the consumer")


def _report_rewind(partition: int, ours: int | None, stored: int | None, to: int | None) -> None:
    """One line on what a rewind found in the window and what is read again."""
    if ours is None or (stored is not None and stored > ours):
        return  # another worker applied past us: the refusal was logged
    if stored is None:
        logger.error(
            "partition %d: the window holds no offset of it, though this worker applied up to "
            "%d (an empty replica promoted, a FLUSHDB, or an evicting maxmemory-policy). Its "
            "earlier messages are not read again, since that would count them all in the "
            "current buckets; reading on from offset %s, where Kafka's committed offset stands",
            partition,
            ours,
            to,
        )
    elif stored < ours:
        logger.warning(
            "partition %d: the window is at offset %d, not %d: Redis lost its last writes (a "
            "failover or a restart from an older state); reading those %d messages again from "
            "Kafka",
            partition,
            stored,
            ours,
            ours - stored,
        )
