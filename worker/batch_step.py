"""The worker's batch step: fold a poll batch, confirm its dead letters, apply it to the window
with a compare-and-set, advance the offsets. Work that must wait (Redis or the dead-letter topic
away, a rewind the consumer refused) is kept as state and retried with backoff, paused."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from confluent_kafka import KafkaError

from loginmetrics.runtime.backoff import Backoff
from loginmetrics.runtime.errors import LoginMetricsError
from loginmetrics.runtime.metrics import WorkerMetrics, worker_metrics
from loginmetrics.window import ApplyOutcome, PartitionAdvance, WindowWriter
from loginmetrics.worker.dead_letter_sender import DeadLetterSender
from loginmetrics.worker.fold import NO_OFFSET, FoldedBatch, Record, RejectedRecord, fold_batch
from loginmetrics.worker.offset_checks import skipped_offsets
from loginmetrics.worker.retry import RetryLater, call_redis
from loginmetrics.worker.rewind import Rewind

logger = logging.getLogger(__name__)

T = TypeVar("T")
Applied = dict[int, int | None]  # partition -> last offset whose effect is in the window
# fold_batch with the settings' size limits bound
Fold = Callable[[Sequence[Record], Mapping[int, int | None]], FoldedBatch]


class Partitions(Protocol):
    """What the step asks of the Kafka consumer (``worker.consumer_shell``)."""

    def pause(self) -> None: ...
    def resume(self) -> None: ...
    def seek(self, partition: int, offset: int) -> None: ...
    def commit(self, applied: Mapping[int, int | None]) -> None: ...


class FatalConsumerError(LoginMetricsError):
    """librdkafka declared the consumer failed (a fatal error): the process must end, and the
    supervisor starts a fresh one in its place."""


@dataclass(slots=True)
class WorkerStats:
    messages: int = 0
    valid: int = 0
    invalid: int = 0
    batches: int = 0
    refused_batches: int = 0


@dataclass(slots=True)
class PendingBatch:
    """A folded batch not applied yet. Its expected offsets were taken when it was folded: a
    rebalance during a retry must not change them (the compare-and-set judges them)."""

    folded: FoldedBatch
    advances: list[PartitionAdvance]
    undelivered: list[RejectedRecord]  # dead letters not confirmed by the broker yet
    processed_at: datetime


class _Stopping(Exception):  # noqa: N818
    pass


class BatchStep:
    """Owns the applied offsets of the consumer's partitions and moves their messages into the
    window exactly once."""

    def __init__(
        self,
        writer: WindowWriter,
        dead_letters: DeadLetterSender,
        partitions: Partitions,
        stop: threading.Event,
        *,
        fold: Fold = fold_batch,
        clock: Callable[[], float] = time.monotonic,
        backoff: Backoff | None = None,
        metrics: WorkerMetrics | None = None,
        overlap: bool = False,
    ) -> None:
        self._writer = writer
        self._dead_letters = dead_letters
        self._partitions = partitions
        self._stop = stop
        self._fold_batch = fold
        self._clock = clock
        self._backoff = backoff or Backoff()
        self.applied: Applied = {}
        self.stats = WorkerStats()
        self._batch: PendingBatch | None = None
        self._rewind = Rewind(writer, partitions, clock)
        # partition -> offset up to which every dead letter is confirmed while this process owns
        # it: messages read again after a rewind do not send theirs again.
        self._lettered: dict[int, int] = {}
        self._retry_at = 0.0
        self._delays: Iterator[float] | None = None
        self._failures = 0
        self._trouble = ""
        self._metrics = metrics or worker_metrics()
        # overlap: a batch is applied on a thread of its own while the next one is consumed and
        # folded (redis-py waits for Redis without the GIL); at most one is in flight, and the
        # next is sent only once its outcome is known, so every expected offset is one the
        # window will hold if the batch before it went in.
        self._applier = ThreadPoolExecutor(1, "apply") if overlap else None
        self._flight: tuple[PendingBatch, Future[tuple[ApplyOutcome, float]]] | None = None

    @property
    def waiting(self) -> bool:
        """Work is pending: the consumer's partitions stay paused until it is done."""
        return self._batch is not None or self._rewind.pending

    def step(self, records: Sequence[Record]) -> float:
        """Handle freshly consumed ``records`` and any retry that is due; return the seconds
        until the next retry is due (0.0: nothing pending, consume at will)."""
        if self._flight is not None:
            return self._step_in_flight(records)
        if not self.waiting and self._rewind.audit_due():
            try:
                self._rewind.audit(self.applied)
            except RetryLater as retry:
                self._rewind.put_back(records, self.applied)
                return self._retry(retry)
        if self.waiting:
            self._rewind.put_back(records, self.applied)
            if self._clock() < self._retry_at:
                return self._retry_at - self._clock()
        elif records:
            self._fold(records)
        if not self.waiting:
            return 0.0
        try:
            self._work()
        except RetryLater as retry:
            return self._retry(retry)
        except _Stopping:
            return 0.0
        if self._failures:
            logger.info("%s is back after %d attempts; resuming", self._trouble, self._failures)
            self._failures, self._delays = 0, None
        self._partitions.resume()
        return 0.0

    def settle(self) -> None:
        """Land the batch being applied, if one is (before the last commit on close)."""
        if self._flight is not None:
            with suppress(RetryLater):  # not applied: the next owner applies it
                self._land()
        if self._applier is not None:
            self._applier.shutdown()

    def _step_in_flight(self, records: Sequence[Record]) -> float:
        """The previous batch is being applied: fold ``records`` meanwhile, against the offsets
        it will leave, then land it and go on as step() does."""
        ahead = self._pending(records, self._projected()) if records else None
        try:
            self._land()
        except RetryLater as retry:
            self._rewind.put_back(records, self.applied)  # folded ahead of one not applied
            return self._retry(retry)
        if ahead is not None:
            if self.waiting:  # refused: the rewind decides where its partitions go on
                self._rewind.put_back(records, self.applied)
            else:
                self._batch = ahead
        return self.step(())

    def _projected(self) -> Applied:
        """The applied offsets once the batch in flight is in."""
        assert self._flight is not None
        projected = dict(self.applied)
        for advance in self._flight[0].advances:
            if advance.partition in projected:
                projected[advance.partition] = advance.applied
        return projected

    def _land(self) -> None:
        """Wait for the batch in flight and take its outcome; a Redis error puts it back to be
        applied again with the same expected offsets."""
        assert self._flight is not None
        pending, applying = self._flight
        self._flight = None
        try:
            outcome, seconds = call_redis(applying.result, "apply a batch")
        except RetryLater:
            self._batch = pending
            raise
        self._took(pending, outcome, seconds)

    def await_flight(self) -> None:
        """Let the batch in flight reach Redis (landed by the next step()): a rebalance callback
        reads or hands over offsets that must be final."""
        if self._flight is not None:
            wait_for([self._flight[1]])

    # -- rebalance (called from the consumer's callbacks) -----------------------------------

    def forget_offsets(self) -> None:
        """The input topic was recreated: what this worker owns starts over from nothing."""
        for partition in self.applied:
            self.applied[partition] = None

    def assigned(self, applied: Applied) -> None:
        self.applied.update(applied)
        for partition in applied:  # the assignment put them where the window is
            self._rewind.forget(partition)

    def revoked(self, partitions: list[int]) -> None:
        self.await_flight()  # the next owner starts from the offsets it leaves
        for partition in partitions:
            self.applied.pop(partition, None)
            self._rewind.forget(partition)
            self._lettered.pop(partition, None)

    # -- one batch -------------------------------------------------------------------------

    def _fold(self, records: Sequence[Record]) -> None:
        self._batch = self._pending(records, self.applied)

    def _pending(self, records: Sequence[Record], applied: Applied) -> PendingBatch | None:
        """``records`` folded on top of ``applied`` (the offsets in the window by then)."""
        folded = self._fold_batch(records, applied)
        for error in folded.kafka_errors:
            if _is_fatal(error):
                # e.g. a static member fenced after a coordinator failover: this consumer can
                # never consume again, a new process (same slot) can.
                raise FatalConsumerError(f"the Kafka consumer failed for good: {error}")
            logger.warning("consumer error: %s", error)
        for partition, count in skipped_offsets(applied, folded.first_offsets).items():
            logger.warning(
                "partition %d: %d offsets after %s were removed (retention or truncation) "
                "before they were read; they are not in the window",
                partition,
                count,
                applied[partition],
            )
            self._metrics.offsets_skipped(count)
        if not folded.last_offsets:
            return None
        advances = [
            PartitionAdvance(partition, applied[partition], last)
            for partition, last in folded.last_offsets.items()
        ]
        lettered = self._lettered
        unsent = [r for r in folded.rejected if r.offset > lettered.get(r.partition, NO_OFFSET)]
        return PendingBatch(folded, advances, unsent, datetime.now(UTC))

    def _work(self) -> None:
        if self._batch is not None:
            self._finish_batch(self._batch)
        self._rewind.move(self.applied)

    def _finish_batch(self, pending: PendingBatch) -> None:
        if pending.undelivered:
            failed = self._dead_letters.deliver(
                pending.undelivered, pending.processed_at, self._stop
            )
            if failed is None:
                raise _Stopping  # nothing applied, nothing committed; the next owner redoes it
            # Only the failed ones are sent again: the others are confirmed.
            pending.undelivered = failed
            if failed:
                raise RetryLater(
                    f"{len(failed)} dead letters not delivered to {self._dead_letters.dlq_topic}",
                    "the dead-letter topic",
                )
        for partition, last in pending.folded.last_offsets.items():
            if partition in self.applied:
                self._lettered[partition] = max(last, self._lettered.get(partition, NO_OFFSET))
        if self._applier is not None and not self._failures:
            self._flight = (pending, self._applier.submit(self._apply, pending))
            self._batch = None
            return  # landed by the next step()
        outcome, seconds = call_redis(lambda: self._apply(pending), "apply a batch")
        self._batch = None
        self._took(pending, outcome, seconds)

    def _apply(self, pending: PendingBatch) -> tuple[ApplyOutcome, float]:
        started = self._clock()
        outcome = self._writer.apply_batch(pending.advances, pending.folded.increments)
        return outcome, self._clock() - started

    def _took(self, pending: PendingBatch, outcome: ApplyOutcome, seconds: float) -> None:
        """Book a batch's outcome: its offsets, commit and figures, or the rewind if refused."""
        if not outcome.applied:
            self._metrics.batch_refused(seconds)
            self._refused(pending, outcome)
            return
        for advance in pending.advances:
            if advance.partition in self.applied:
                self.applied[advance.partition] = advance.applied
        self._partitions.commit(self.applied)
        increments = pending.folded.increments
        self.stats.batches += 1
        self.stats.messages += increments.total
        self.stats.valid += increments.valid
        self.stats.invalid += increments.invalid
        codes = (rejected.rejection.code for rejected in pending.folded.rejected)
        self._metrics.batch_applied(increments.valid, increments.invalid, codes, seconds)

    # -- refused batch: rewind to where the window is ----------------------------------------

    def _refused(self, pending: PendingBatch, outcome: ApplyOutcome) -> None:
        """The window holds another offset than the batch expected (another worker applied
        past it, or Redis lost writes): drop the batch and resume where the window is."""
        self.stats.refused_batches += 1
        first = {p: o for p, o in pending.folded.first_offsets.items() if p in self.applied}
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
            list(first),
        )
        self._rewind.after_refusal(first, pending.advances)

    # -- waiting -------------------------------------------------------------------------------

    def _retry(self, retry: RetryLater) -> float:
        if self._delays is None:
            self._delays = self._backoff.delays()
        self._failures += 1
        self._trouble = retry.service
        self._partitions.pause()
        delay = next(self._delays)
        self._retry_at = self._clock() + delay
        logger.warning(
            "%s; consumption paused, attempt %d, retrying in %.1f s", retry, self._failures, delay
        )
        return delay


def _is_fatal(error: Any) -> bool:
    """A librdkafka error the consumer cannot recover from: the ``_FATAL`` event that reports
    it (whose own flag is not always set), or an error flagged fatal."""
    return bool(error.code() == KafkaError._FATAL or error.fatal())
