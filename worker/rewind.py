"""Moves the consumer's partitions back to where the window is: after a refused batch, when the
window lost writes this process applied (found by a periodic check), or when messages arrived
while the batch step was paused. A seek the consumer refuses is kept and tried again."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from typing import Protocol

from confluent_kafka import OFFSET_BEGINNING, KafkaException

from loginmetrics.window import PartitionAdvance, WindowWriter
from loginmetrics.worker.fold import Record
from loginmetrics.worker.retry import RetryLater, call_redis

logger = logging.getLogger(__name__)

Applied = dict[int, int | None]  # partition -> last offset whose effect is in the window
# How often a worker checks that the window still holds the offsets it applied. A Redis that
# lost its last writes (a lagging replica promoted, a restart from an older snapshot) refuses
# the partition's next batch; this finds it when no next batch comes.
AUDIT_SECONDS = 2.0


class Seeker(Protocol):
    def seek(self, partition: int, offset: int) -> None: ...


class Rewind:
    """Partitions whose position must move before they are consumed again. ``applied`` (the
    batch step's offsets, passed to each call) is set to what the window holds as they move."""

    def __init__(
        self, writer: WindowWriter, consumer: Seeker, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._writer = writer
        self._consumer = consumer
        self._clock = clock
        # partition -> where to read from if the window holds no offset of it
        self._unread: dict[int, int] = {}
        self._seeks: dict[int, int] = {}  # partition -> offset still to seek to
        self._audit_at = clock() + AUDIT_SECONDS

    @property
    def pending(self) -> bool:
        return bool(self._unread) or bool(self._seeks)

    def forget(self, partition: int) -> None:
        """The partition was assigned (at the window's offset) or revoked: nothing to move."""
        self._unread.pop(partition, None)
        self._seeks.pop(partition, None)

    def after_refusal(
        self, first_offsets: Mapping[int, int], advances: Sequence[PartitionAdvance]
    ) -> None:
        """A batch that began at ``first_offsets`` was refused: its partitions go back to where
        the window is. One the window had an offset of, and has none now, is read from its
        start; one it never had, from where this process started it."""
        had = {advance.partition: advance.expected for advance in advances}
        for partition, first in first_offsets.items():
            self._unread[partition] = first if had.get(partition) is None else OFFSET_BEGINNING

    def audit_due(self) -> bool:
        return self._clock() >= self._audit_at

    def audit(self, applied: Applied) -> None:
        """Rewind every partition whose applied offset the window no longer holds: it went
        back (or is gone) since this process applied it, so Redis lost those writes. One the
        window holds further on is another worker's now: the compare-and-set handles it."""
        self._audit_at = self._clock() + AUDIT_SECONDS
        owned = [partition for partition, last in applied.items() if last is not None]
        if not owned:
            return
        stored = call_redis(lambda: self._writer.applied_offsets(owned), "check applied offsets")
        for partition in owned:
            ours, theirs = applied[partition], stored[partition]
            if ours is not None and (theirs is None or theirs < ours):
                logger.warning(
                    "partition %d: the window is at %s, not offset %d: Redis lost its last "
                    "writes (a failover or a restart from an older state); reading them again "
                    "from Kafka",
                    partition,
                    "no offset" if theirs is None else f"offset {theirs}",
                    ours,
                )
                self._unread[partition] = OFFSET_BEGINNING

    def move(self, applied: Applied) -> None:
        """Read the window's offsets of the partitions to rewind and seek them there; raises
        ``RetryLater`` while Redis or a seek fails (what is left is kept)."""
        if self._unread:
            self._read_targets(applied)
        if self._seeks:
            self._seek(applied)

    def put_back(self, records: Sequence[Record], applied: Applied) -> None:
        """Messages delivered after the pause are not ours to fold yet: seek back to them."""
        first: dict[int, int] = {}
        for record in records:
            partition, offset = record.partition(), record.offset()
            if record.error() is None and partition is not None and offset is not None:
                first.setdefault(partition, offset)
        for partition, offset in first.items():
            # A rewind in progress decides where that partition goes on.
            if partition in applied and partition not in self._unread | self._seeks:
                self._seeks[partition] = offset
        if first:
            with suppress(RetryLater):  # what failed stays in _seeks for the next retry
                self._seek(applied)

    def _read_targets(self, applied: Applied) -> None:
        wanted = list(self._unread)
        stored = call_redis(lambda: self._writer.applied_offsets(wanted), "read applied offsets")
        for partition in wanted:
            origin = self._unread.pop(partition)
            if partition in applied:
                last = stored[partition]
                applied[partition] = last
                self._seeks[partition] = origin if last is None else last + 1

    def _seek(self, applied: Applied) -> None:
        for partition, offset in list(self._seeks.items()):
            try:
                self._consumer.seek(partition, offset)
            except KafkaException as exc:
                if partition in applied:
                    # Still ours: consuming on from where it is would skip messages.
                    logger.warning(
                        "could not rewind partition %d to offset %d: %s", partition, offset, exc
                    )
                    continue
            del self._seeks[partition]
        if self._seeks:
            raise RetryLater(f"partitions {sorted(self._seeks)} not rewound", "the consumer")
