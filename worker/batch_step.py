"""The worker's batch loop: fold a poll batch, confirm its dead letters, apply it to the window
with a compare-and-set, advance the offsets; move partitions that must be placed or rewound.

It is CONSUMING, or WAITING for a retry of what failed (Redis, the dead-letter topic, a seek).
One rule, kept in ``_sync_pause`` alone: while WAITING every partition is paused; otherwise
exactly the partitions that are not consuming yet (being placed, rewound or moved) are."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from enum import Enum
from typing import Protocol

from loginmetrics.runtime.attempts import Attempts
from loginmetrics.runtime.backoff import Backoff
from loginmetrics.window import ApplyOutcome, WindowWriter
from loginmetrics.worker.batches import PendingBatch, WorkerStats
from loginmetrics.worker.consumer_errors import raise_if_fatal
from loginmetrics.worker.dead_letter_sender import DeadLetterSender
from loginmetrics.worker.event_fold import WindowClock
from loginmetrics.worker.fold import (
    FoldedBatch,
    Record,
    first_offsets,
    fold_batch,
)
from loginmetrics.worker.metrics import WorkerMetrics, worker_metrics
from loginmetrics.worker.owned_partitions import OwnedPartitions, Phase
from loginmetrics.worker.positions import Positions, Seeker
from loginmetrics.worker.retry import RetryLater, call_redis
from loginmetrics.worker.topic_inspector import TopicInspector
from loginmetrics.worker.validation import DEFAULT_MAX_FIELD_BYTES, DEFAULT_MAX_MESSAGE_BYTES

logger = logging.getLogger(__name__)

# Folds records on top of the partitions' applied offsets and watermarks (event time; a
# processing-time fold ignores them): fold_batch or fold_event_batch with the settings bound.
Fold = Callable[
    [Sequence[Record], Mapping[int, int | None], Mapping[int, float | None]], FoldedBatch
]


def processing_fold(
    max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES, max_field_bytes: int = DEFAULT_MAX_FIELD_BYTES
) -> Fold:
    def fold(
        records: Sequence[Record],
        applied: Mapping[int, int | None],
        _watermarks: Mapping[int, float | None],
    ) -> FoldedBatch:
        return fold_batch(records, applied, max_bytes, max_field_bytes)

    return fold


# How often a worker checks that the window still holds the offsets it applied. A Redis that
# lost its last writes (a lagging replica promoted, a restart from an older snapshot) refuses
# the partition's next batch; this finds it when no next batch comes.
AUDIT_SECONDS = 2.0


class Partitions(Seeker, Protocol):
    """What the loop asks of the Kafka consumer (``worker.consumer_shell``)."""

    def pause(self, partitions: list[int]) -> None: ...
    def resume(self, partitions: list[int]) -> None: ...
    def commit(self, applied: Mapping[int, int]) -> None: ...


class LoopState(Enum):
    CONSUMING = "consuming"
    WAITING = "waiting"  # for a retry of what failed; every partition paused


class _Stopping(Exception):  # noqa: N818
    pass


class BatchStep:
    """Moves the messages of the consumer's partitions into the window exactly once."""

    def __init__(
        self,
        writer: WindowWriter,
        dead_letters: DeadLetterSender,
        consumer: Partitions,
        stop: threading.Event,
        *,
        topic: str,
        fold: Fold | None = None,
        clock: Callable[[], float] = time.monotonic,
        backoff: Backoff | None = None,
        metrics: WorkerMetrics | None = None,
        inspector: TopicInspector | None = None,
        window_clock: WindowClock | None = None,
    ) -> None:
        self._writer = writer
        self._dead_letters = dead_letters
        self._consumer = consumer
        self._stop = stop
        self._fold_batch = fold or processing_fold()
        self._window_clock = window_clock
        self._clock = clock
        self._metrics = metrics or worker_metrics()
        self.owned = OwnedPartitions()
        self.stats = WorkerStats()
        self._positions = Positions(self.owned, writer, consumer, topic, self._metrics, inspector)
        self._attempts = Attempts(backoff, clock)
        self._trouble = ""  # what the loop waits for, while WAITING
        self._batch: PendingBatch | None = None
        self._audit_at = clock() + AUDIT_SECONDS
        self._paused: set[int] = set()  # what the consumer was told

    @property
    def state(self) -> LoopState:
        return LoopState.WAITING if self._attempts.failures else LoopState.CONSUMING

    @property
    def trouble(self) -> str:
        return self._trouble

    @property
    def waiting(self) -> bool:
        """Work is pending: a batch, a retry, or partitions not consuming yet."""
        return bool(self._attempts.failures or self._batch or self.owned.unsettled())

    @property
    def applied(self) -> dict[int, int | None]:
        return {p: self.owned.applied(p) for p in self.owned}

    def step(self, records: Sequence[Record]) -> float:
        """Handle freshly consumed ``records`` and whatever is due; return the seconds until
        the next retry is due (0.0: nothing pending, consume at will)."""
        before = self.owned.epochs()
        unfolded = records
        if self._attempts.wait() == 0.0:
            try:
                self._catch_up()
                if records:
                    self._batch = self._fold(records, self._steady(before))
                    unfolded = ()
                    self._apply_pending()
            except RetryLater as retry:
                self._failed(retry)
            except _Stopping:
                return 0.0
            else:
                self._recovered()
        self._put_back(unfolded, before)
        self._sync_pause()
        return self._attempts.wait() if self._attempts.failures else 0.0

    # -- the rebalance callbacks: no I/O but the consumer's own -----------------------------

    def assigned(self, partitions: list[int]) -> None:
        self.owned.assign(partitions)  # placed by the next step()
        self._sync_pause()

    def revoked(self, partitions: list[int]) -> None:
        self.owned.revoke(partitions)
        self._paused.difference_update(partitions)  # the consumer forgets them too
        self._metrics.partitions_paused.set(len(self._paused))

    # -- work ------------------------------------------------------------------------------

    def _catch_up(self) -> None:
        """What is pending or due, in order: the batch, moving partitions, the offset check."""
        self._apply_pending()
        if self._window_clock is not None:
            self.owned.release(self._window_clock.reach())
        self._positions.move()
        if self._clock() >= self._audit_at:
            self._positions.check_applied()
            self._audit_at = self._clock() + AUDIT_SECONDS
            self._positions.move()

    def _apply_pending(self) -> None:
        if self._batch is not None:
            self._finish_batch(self._batch)
            self._positions.move()  # a refused batch rewinds its partitions

    def _steady(self, before: Mapping[int, int]) -> dict[int, int | None]:
        """Applied offsets of the partitions consumed without a move since ``before``: what
        was consumed ahead of a seek is read again after it, not folded."""
        return {
            p: self.owned.applied(p) for p, e in self.owned.epochs().items() if before.get(p) == e
        }

    # -- one batch -------------------------------------------------------------------------

    def _fold(
        self, records: Sequence[Record], applied: Mapping[int, int | None]
    ) -> PendingBatch | None:
        """``records`` folded on top of ``applied`` (the offsets in the window by then)."""
        marks = self.owned.watermarks()
        folded = self._fold_batch(records, applied, marks)
        raise_if_fatal(folded.kafka_errors)
        if folded.behind:  # the consumer was moved under this worker: placed again
            self._positions.went_back(folded.behind, applied)
            applied = {p: o for p, o in applied.items() if p not in folded.behind}
            folded = self._fold_batch(records, applied, marks)
        for partition, (offset, event_time) in folded.held.items():
            self.owned.hold(partition, offset, event_time)
        self._positions.count_gaps(applied, folded.first_offsets)
        if not folded.last_offsets:
            return None
        return PendingBatch.of(folded, applied, self.owned.unsent(folded.rejected))

    def _finish_batch(self, pending: PendingBatch) -> None:
        if pending.undelivered:
            failed = self._dead_letters.deliver(
                pending.undelivered, pending.processed_at, self._stop
            )
            if failed is None:
                raise _Stopping  # nothing applied, nothing committed; the next owner redoes it
            pending.undelivered = failed  # the others are confirmed: only these are sent again
            if failed:
                raise RetryLater(
                    f"{len(failed)} dead letters not delivered to {self._dead_letters.dlq_topic}",
                    "the dead-letter topic",
                )
        self.owned.confirm_letters(pending.folded.last_offsets)
        started = self._clock()
        outcome = call_redis(lambda: self._apply(pending), "apply a batch")
        seconds = self._clock() - started
        self._batch = None
        if outcome.applied:
            self._took(pending, outcome, seconds)
        else:
            self._metrics.batch_refused(seconds)
            self._refused(pending, outcome)

    def _apply(self, pending: PendingBatch) -> ApplyOutcome:
        folded = pending.folded
        if folded.buckets is None:
            return self._writer.apply_batch(pending.advances, folded.increments)
        return self._writer.apply_event_batch(pending.advances, folded.buckets, folded.watermarks)

    def _took(self, pending: PendingBatch, outcome: ApplyOutcome, seconds: float) -> None:
        if self._window_clock is not None and outcome.server_time is not None:
            self._window_clock.observe(outcome.server_time)
            self._window_clock.saw(outcome.emitted_end, outcome.first_bucket)
        self.owned.advance(pending.folded.last_offsets, pending.folded.watermarks)
        self._consumer.commit(self.owned.committable())
        increments = pending.folded.increments
        self.stats.add(increments.valid, increments.invalid)
        codes = (rejected.rejection.code for rejected in pending.folded.rejected)
        self._metrics.batch_applied(increments.valid, increments.invalid, codes, seconds)

    def _refused(self, pending: PendingBatch, outcome: ApplyOutcome) -> None:
        """The window holds another offset than the batch expected (another worker applied
        past it, or Redis lost writes): drop the batch and go on where the window is."""
        self.stats.refused_batches += 1
        first = pending.folded.first_offsets
        expected = next(
            (a.expected for a in pending.advances if a.partition == outcome.conflict_partition),
            None,
        )
        logger.warning(
            "window refused batch: partition %s is at offset %s in Redis, not %s; "
            "another worker owns it now or Redis lost writes; rewinding %s",
            outcome.conflict_partition,
            outcome.stored_offset,
            expected,
            [p for p in first if p in self.owned],
        )
        for partition, offset in first.items():
            self.owned.rewind(partition, fallback=offset)

    # -- waiting ---------------------------------------------------------------------------

    def _failed(self, retry: RetryLater) -> None:
        delay = self._attempts.failed()
        self._trouble = retry.service
        logger.log(
            self._attempts.log_level,
            "%s; consumption paused, attempt %d, retrying in %.1f s",
            retry,
            self._attempts.failures,
            delay,
        )

    def _recovered(self) -> None:
        failures = self._attempts.succeeded()
        if failures:
            logger.info("%s is back after %d attempts; resuming", self._trouble, failures)
        self._trouble = ""

    def _put_back(self, records: Sequence[Record], before: Mapping[int, int]) -> None:
        """Consumed, not folded: each partition consumed without a move since goes back to its
        first such message (one being moved goes where that move takes it)."""
        first, errors = first_offsets(records)
        raise_if_fatal(errors)
        epochs = self.owned.epochs()
        for partition, offset in first.items():
            if partition in epochs and before.get(partition) == epochs[partition]:
                self.owned.put_back(partition, offset)

    def _sync_pause(self) -> None:
        """The one place that pauses and resumes: everything while WAITING, else exactly the
        partitions that are not consuming yet."""
        owned = set(self.owned)
        wanted = owned if self._attempts.failures else self.owned.unsettled()
        if wanted == self._paused:
            return
        if wanted - self._paused:
            self._consumer.pause(sorted(wanted - self._paused))
        if self._paused - wanted:
            self._consumer.resume(sorted(self._paused - wanted))
        self._paused = wanted
        # Held partitions wait for the windows by design (event time's catch-up), not trouble.
        self._metrics.partitions_paused.set(len(wanted - set(self.owned.in_phase(Phase.HELD))))
