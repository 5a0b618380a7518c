"""The one owner of what a worker knows about each partition it owns: the offset applied to the
window (and in event time the watermark that goes with it), the offset up to which its dead
letters are confirmed, and where the consumer must be moved before the partition is consumed
again. Nothing else writes these."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import Enum

from confluent_kafka import OFFSET_BEGINNING

from loginmetrics.worker.fold import NO_OFFSET, RejectedRecord

# A seek target meaning "where the consumer stands": Kafka's committed offset (or the reset
# policy) for a partition just assigned, the current position otherwise.
STAY = None


class Phase(Enum):
    """Where a partition stands; only a CONSUMING one is folded and resumed.

    PLACING -> SEEKING -> CONSUMING on assignment (and when its position was reset under it);
    CONSUMING -> REWINDING -> SEEKING when the window holds another offset than this worker
    applied; CONSUMING -> SEEKING when consumed messages are put back while the step waits;
    CONSUMING -> HELD -> SEEKING in event time, while its next message lies too far ahead of
    the windows emitted so far (a catch-up then keeps only so many buckets in Redis).
    """

    PLACING = "placing"  # assigned: the window's offset and the topic's end not read yet
    REWINDING = "rewinding"  # the window's offset must be read again
    SEEKING = "seeking"  # the consumer must move to ``seek_to`` (STAY: nowhere)
    HELD = "held"  # waits at ``seek_to`` until the windows reach ``held_until``
    CONSUMING = "consuming"


class OffsetWentBackError(ValueError):
    """An applied offset may only move back through an explicit rewind."""


@dataclass(slots=True)
class _Partition:
    phase: Phase
    applied: int | None = None  # last offset whose effect is in the window; None: none yet
    watermark: float | None = None  # event time: stored with ``applied``; None: none yet
    lettered: int = NO_OFFSET  # every dead letter up to here is confirmed by the broker
    seek_to: int | None = STAY  # SEEKING: where the consumer goes next
    fallback: int | None = STAY  # REWINDING: where to read if the window holds no offset
    epoch: int = 0  # moves of the consumer: messages consumed before a move are stale
    held_until: float = 0.0  # HELD: the event time of the message it waits at


class OwnedPartitions:
    """The partitions of one consumer, each in one ``Phase``; see the methods for the moves."""

    def __init__(self) -> None:
        self._partitions: dict[int, _Partition] = {}
        self._topic_id: str | None = None  # the input topic's incarnation these belong to

    def __contains__(self, partition: object) -> bool:
        return partition in self._partitions

    def __len__(self) -> int:
        return len(self._partitions)

    def __iter__(self) -> Iterator[int]:
        return iter(sorted(self._partitions))

    def phase(self, partition: int) -> Phase:
        return self._partitions[partition].phase

    def applied(self, partition: int) -> int | None:
        return self._partitions[partition].applied

    def in_phase(self, phase: Phase) -> list[int]:
        return sorted(p for p, state in self._partitions.items() if state.phase is phase)

    def unsettled(self) -> set[int]:
        """Partitions that must not be consumed until they are moved: paused."""
        return {p for p, state in self._partitions.items() if state.phase is not Phase.CONSUMING}

    def consuming(self) -> dict[int, int | None]:
        """Partition -> applied offset, of the partitions whose messages may be folded now."""
        return {
            p: state.applied
            for p, state in self._partitions.items()
            if state.phase is Phase.CONSUMING
        }

    def watermarks(self) -> dict[int, float | None]:
        """Partition -> watermark (event time), of the consuming partitions."""
        return {
            p: state.watermark
            for p, state in self._partitions.items()
            if state.phase is Phase.CONSUMING
        }

    def epochs(self) -> dict[int, int]:
        """Partition -> how often the consumer was moved, of the consuming partitions."""
        return {
            p: state.epoch
            for p, state in self._partitions.items()
            if state.phase is Phase.CONSUMING
        }

    def committable(self) -> dict[int, int]:
        """Partition -> applied offset, where the window holds one (for Kafka's commit)."""
        return {
            p: state.applied
            for p, state in self._partitions.items()
            if state.applied is not None and state.phase is Phase.CONSUMING
        }

    # -- the group -------------------------------------------------------------------------

    def assign(self, partitions: Iterable[int]) -> None:
        """New partitions: placed by the loop (no Redis call in a rebalance callback)."""
        for partition in partitions:
            self._partitions[partition] = _Partition(Phase.PLACING)

    def revoke(self, partitions: Iterable[int]) -> None:
        for partition in partitions:
            self._partitions.pop(partition, None)

    def replace(self, partition: int) -> None:
        """Its position was reset under it: placed again, as on assignment."""
        state = self._partitions[partition]
        state.phase, state.seek_to, state.fallback = Phase.PLACING, STAY, STAY

    def adopt(self, topic_id: str) -> bool:
        """The input topic's id as the broker says it now; True when this worker's state was
        for another incarnation (whichever worker told Redis first)."""
        known, self._topic_id = self._topic_id, topic_id
        return known is not None and known != topic_id

    def forget_all(self) -> None:
        """The input topic was recreated: every partition starts over from the new topic's
        first message, with no offset applied and no dead letter confirmed."""
        for state in self._partitions.values():
            state.applied, state.lettered, state.fallback = None, NO_OFFSET, STAY
            state.watermark = None
            if state.phase is not Phase.PLACING:  # a placing one is placed at the start too
                state.phase, state.seek_to = Phase.SEEKING, OFFSET_BEGINNING

    # -- moving a partition ----------------------------------------------------------------

    def place(
        self,
        partition: int,
        applied: int | None,
        seek_to: int | None,
        watermark: float | None = None,
    ) -> None:
        """Where the window stands for a partition being placed: move the consumer there."""
        state = self._partitions[partition]
        if state.phase is Phase.PLACING:
            state.applied, state.phase, state.seek_to = applied, Phase.SEEKING, seek_to
            state.watermark = watermark if applied is not None else None

    def rewind(self, partition: int, fallback: int) -> None:
        """The window may hold another offset than ours: read it again and go there, or to
        ``fallback`` (where this worker's reading stands) if it holds none."""
        state = self._partitions.get(partition)
        if state is not None and state.phase is not Phase.PLACING:
            state.phase, state.seek_to, state.fallback = Phase.REWINDING, STAY, fallback

    def rewound(
        self, partition: int, stored: int | None, watermark: float | None = None
    ) -> int | None:
        """The window holds ``stored`` (and ``watermark``) for a rewinding partition: it becomes
        the applied offset, and the consumer goes to the offset after it (or the fallback).
        Returns the offset the partition had applied before."""
        state = self._partitions[partition]
        ours = state.applied
        state.applied, state.phase = stored, Phase.SEEKING
        state.watermark = watermark if stored is not None else None
        state.seek_to = state.fallback if stored is None else stored + 1
        return ours

    def put_back(self, partition: int, first: int) -> None:
        """Consumed messages from ``first`` on were not folded: the consumer reads them again.
        A partition already being moved goes where that move takes it."""
        state = self._partitions.get(partition)
        if state is not None and state.phase is Phase.CONSUMING:
            state.phase, state.seek_to = Phase.SEEKING, first

    def hold(self, partition: int, offset: int, event_time: float) -> None:
        """Its message at ``offset`` (of ``event_time``) is too far ahead of the emitted
        windows: the consumer goes back there once they have come close enough."""
        state = self._partitions.get(partition)
        if state is not None and state.phase is Phase.CONSUMING:
            state.phase, state.seek_to, state.held_until = Phase.HELD, offset, event_time

    def release(self, reach: float | None) -> list[int]:
        """Held partitions whose message is within ``reach`` (None: everything) move on;
        returns them."""
        released = []
        for partition, state in self._partitions.items():
            if state.phase is Phase.HELD and (reach is None or state.held_until <= reach):
                state.phase = Phase.SEEKING
                released.append(partition)
        return sorted(released)

    def seeks(self) -> dict[int, int | None]:
        """Partition -> offset to seek to (STAY: none), of the partitions still to move."""
        return {p: s.seek_to for p, s in self._partitions.items() if s.phase is Phase.SEEKING}

    def sought(self, partition: int) -> None:
        """The consumer moved: the partition is consumed again."""
        state = self._partitions.get(partition)
        if state is not None and state.phase is Phase.SEEKING:
            state.phase, state.seek_to = Phase.CONSUMING, STAY
            state.epoch += 1

    # -- a batch ---------------------------------------------------------------------------

    def advance(
        self, advances: Mapping[int, int], watermarks: Mapping[int, float] | None = None
    ) -> None:
        """A batch was applied: partition -> its new applied offset, and in event time its
        watermark (partitions no longer owned are skipped; the compare-and-set already judged
        them)."""
        for partition, mark in (watermarks or {}).items():
            if partition in self._partitions:
                self._partitions[partition].watermark = mark
        for partition, last in advances.items():
            state = self._partitions.get(partition)
            if state is None:
                continue
            if state.applied is not None and last < state.applied:
                raise OffsetWentBackError(
                    f"partition {partition}: applied offset {state.applied} cannot go back to "
                    f"{last} without a rewind"
                )
            state.applied = last

    def confirm_letters(self, last_offsets: Mapping[int, int]) -> None:
        """Every dead letter of these partitions up to these offsets is confirmed."""
        for partition, last in last_offsets.items():
            state = self._partitions.get(partition)
            if state is not None:
                state.lettered = max(state.lettered, last)

    def unsent(self, rejected: Iterable[RejectedRecord]) -> list[RejectedRecord]:
        """The rejected records whose dead letters are not confirmed yet (a message read again
        after a rewind does not send its letter again)."""
        lettered = {p: state.lettered for p, state in self._partitions.items()}
        return [r for r in rejected if r.offset > lettered.get(r.partition, NO_OFFSET)]
