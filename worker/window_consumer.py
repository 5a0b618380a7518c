"""The batch loop of one worker: consume, fold, dead-letter, apply to the window, commit."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import redis
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from loginmetrics.runtime.backoff import Backoff
from loginmetrics.window import PartitionAdvance, WindowIncrements, WindowWriter
from loginmetrics.window.apply import ApplyOutcome
from loginmetrics.worker.dead_letter import encode_dead_letter
from loginmetrics.worker.fold import FoldedBatch, RejectedRecord, fold_batch
from loginmetrics.worker.settings import WorkerSettings

logger = logging.getLogger(__name__)

REDIS_ERRORS = (redis.ConnectionError, redis.TimeoutError)
PROGRESS_LOG_SECONDS = 10.0
T = TypeVar("T")


@dataclass(slots=True)
class WorkerStats:
    messages: int = 0
    valid: int = 0
    invalid: int = 0
    batches: int = 0
    refused_batches: int = 0


class WindowConsumer:
    """Owns one consumer's partitions and moves their messages into the window exactly once.

    The applied offset of every owned partition lives in Redis and moves only together with
    the increments (see ``window/apply_batch.lua``); Kafka commits are a courtesy for tools.
    """

    def __init__(
        self,
        settings: WorkerSettings,
        consumer: Consumer,
        producer: Producer,
        writer: WindowWriter,
        stop: threading.Event,
    ) -> None:
        self._settings = settings
        self._consumer = consumer
        self._producer = producer
        self._writer = writer
        self._stop = stop
        # partition -> last offset whose effect is in the window (None: nothing yet)
        self._applied: dict[int, int | None] = {}
        self._paused = False
        # librdkafka does not allow polling from inside its own rebalance callback.
        self._in_rebalance = False
        self.stats = WorkerStats()
        self._last_progress = time.monotonic()
        self._progress_messages = 0

    # -- lifecycle -------------------------------------------------------------------------

    def run(self) -> None:
        topic = self._settings.input_topic
        self._consumer.subscribe(
            [topic], on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_revoke
        )
        logger.info("consuming %s as group %s", topic, self._settings.group_id)
        try:
            while not self._stop.is_set():
                records = self._consumer.consume(
                    self._settings.batch_size, self._settings.poll_timeout_seconds
                )
                if records:
                    self.process(records)
                self._log_progress()
        finally:
            self._close()

    def _close(self) -> None:
        self._producer.flush(10)
        self._commit(asynchronous=False)
        # close() leaves the group at once, so the partitions move on without a session timeout.
        self._consumer.close()
        logger.info(
            "stopped after %d messages (%d valid, %d invalid) in %d batches",
            self.stats.messages,
            self.stats.valid,
            self.stats.invalid,
            self.stats.batches,
        )

    # -- one batch -------------------------------------------------------------------------

    def process(self, records: Sequence[Any]) -> None:
        batch = fold_batch(records, self._applied, self._settings.max_message_bytes)
        for error in batch.kafka_errors:
            logger.warning("consumer error: %s", error)
        if not batch.last_offsets:
            return
        # Expected offsets are taken now: a rebalance during a retry below must not change them.
        advances = [
            PartitionAdvance(partition, self._applied[partition], last)
            for partition, last in batch.last_offsets.items()
        ]
        if batch.rejected and not self._publish_dead_letters(batch.rejected):
            return  # stopping: nothing applied, nothing committed; the next owner redoes it
        outcome = self._apply(advances, batch.increments)
        if outcome is None:
            return
        if not outcome.applied:
            self._rewind(batch, outcome, advances)
            return
        for advance in advances:
            if advance.partition in self._applied:
                self._applied[advance.partition] = advance.applied
        self._commit(asynchronous=True)
        stats = self.stats
        stats.batches += 1
        stats.messages += batch.increments.total
        stats.valid += batch.increments.valid
        stats.invalid += batch.increments.invalid

    def _apply(
        self, advances: list[PartitionAdvance], increments: WindowIncrements
    ) -> ApplyOutcome | None:
        return self._retry_redis(
            lambda: self._writer.apply_batch(advances, increments), "apply a batch"
        )

    def _rewind(
        self, batch: FoldedBatch, outcome: ApplyOutcome, advances: list[PartitionAdvance]
    ) -> None:
        """Another worker applied past us: drop the batch and resume where the window is."""
        self.stats.refused_batches += 1
        partitions = [p for p in batch.last_offsets if p in self._applied]
        # What the batch expected, not self._applied: a rebalance may have changed that since.
        expected = next(
            (a.expected for a in advances if a.partition == outcome.conflict_partition), None
        )
        logger.warning(
            "window refused batch: partition %s is at offset %s in Redis, not %s; "
            "another worker owns it now, rewinding %s",
            outcome.conflict_partition,
            outcome.stored_offset,
            expected,
            partitions,
        )
        fresh = self._retry_redis(
            lambda: self._writer.applied_offsets(partitions), "read applied offsets"
        )
        if fresh is None:
            return
        for partition in partitions:
            stored = fresh[partition]
            self._applied[partition] = stored
            target = batch.first_offsets[partition] if stored is None else stored + 1
            try:
                self._consumer.seek(TopicPartition(self._settings.input_topic, partition, target))
            except KafkaException as exc:
                # Not assigned any more: the rebalance will hand it to its new owner anyway.
                logger.info("could not rewind partition %d: %s", partition, exc)

    # -- dead letters ----------------------------------------------------------------------

    def _publish_dead_letters(self, rejected: list[RejectedRecord]) -> bool:
        """Produce and confirm every dead letter; False only when asked to stop meanwhile."""
        processed_at = datetime.now(UTC)
        topic = self._settings.input_topic
        pending = rejected
        delays = Backoff().delays()
        while pending:
            failed: list[RejectedRecord] = []
            for record in pending:
                self._produce_dead_letter(
                    record, encode_dead_letter(record, topic, processed_at), failed
                )
            while self._producer.flush(1.0) > 0:
                if self._stop.is_set():
                    return False
            if not failed:
                return True
            logger.warning(
                "%d dead letters not delivered to %s; retrying",
                len(failed),
                self._settings.dlq_topic,
            )
            pending = failed
            if self._idle(next(delays)):
                return False
        return True

    def _produce_dead_letter(
        self, record: RejectedRecord, letter: bytes, failed: list[RejectedRecord]
    ) -> None:
        def on_delivery(error: Any, _message: Any) -> None:
            if error is not None:
                logger.warning("dead letter for offset %d lost: %s", record.offset, error)
                failed.append(record)

        key = f"{self._settings.input_topic}:{record.partition}:{record.offset}".encode()
        while True:
            try:
                self._producer.produce(
                    self._settings.dlq_topic, letter, key=key, on_delivery=on_delivery
                )
                return
            except BufferError:
                self._producer.poll(0.1)  # local queue full: let deliveries drain

    # -- Redis trouble: pause, back off, resume ------------------------------------------------

    def _retry_redis(self, operation: Callable[[], T], what: str) -> T | None:
        """Run ``operation`` until Redis answers; None if asked to stop first."""
        delays = Backoff().delays()
        attempts = 0
        while True:
            try:
                result = operation()
            except REDIS_ERRORS as exc:
                attempts += 1
                if attempts == 1:
                    self._pause()
                logger.warning(
                    "Redis unavailable (%s) trying to %s; consumption paused, attempt %d",
                    exc,
                    what,
                    attempts,
                )
                if self._idle(next(delays)):
                    return None
                continue
            if attempts:
                logger.info("Redis is back after %d attempts; resuming", attempts)
                self._resume()
            return result

    def _pause(self) -> None:
        if not self._paused:
            self._paused = True
            self._consumer.pause(self._consumer.assignment())

    def _resume(self) -> None:
        if self._paused:
            self._paused = False
            self._consumer.resume(self._consumer.assignment())

    def _idle(self, seconds: float) -> bool:
        """Wait, while still polling so the group keeps us; True if asked to stop."""
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0 and not self._stop.is_set():
            polling = self._paused and not self._in_rebalance
            message = self._consumer.poll(min(remaining, 0.5)) if polling else None
            if message is None:
                if not polling:
                    self._stop.wait(min(remaining, 0.5))
                continue
            partition, offset = message.partition(), message.offset()
            if message.error() is None and partition is not None and offset is not None:
                # Delivered before its partition could be paused: put it back, it is not ours yet.
                self._consumer.seek(TopicPartition(self._settings.input_topic, partition, offset))
        return self._stop.is_set()

    # -- rebalance -------------------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        numbers = [tp.partition for tp in partitions]
        self._in_rebalance = True
        try:
            applied = self._retry_redis(
                lambda: self._writer.applied_offsets(numbers), "read applied offsets"
            )
        finally:
            self._in_rebalance = False
        if applied is None:
            return  # stopping
        for tp in partitions:
            last = applied[tp.partition]
            if last is not None:
                tp.offset = last + 1  # Redis, not Kafka's commit, says where the window is
            self._applied[tp.partition] = last
        consumer.incremental_assign(partitions)
        if self._paused:
            consumer.pause(partitions)
        logger.info(
            "assigned %s",
            ", ".join(f"{self._settings.input_topic}[{p}]@{applied[p]}" for p in numbers),
        )

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self._applied.pop(tp.partition, None)
        logger.info("revoked %s", [tp.partition for tp in partitions])

    # -- offsets and progress --------------------------------------------------------------

    def _commit(self, *, asynchronous: bool) -> None:
        offsets = [
            TopicPartition(self._settings.input_topic, partition, last + 1)
            for partition, last in self._applied.items()
            if last is not None
        ]
        if not offsets:
            return
        try:
            if asynchronous:
                self._consumer.commit(offsets=offsets, asynchronous=True)
            else:
                self._consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            logger.debug("offset commit skipped: %s", exc)

    def _log_progress(self) -> None:
        now = time.monotonic()
        elapsed = now - self._last_progress
        if elapsed < PROGRESS_LOG_SECONDS:
            return
        delta = self.stats.messages - self._progress_messages
        logger.info(
            "%d messages in the last %.0f s (%.0f msg/s); %d total, %d invalid, partitions %s",
            delta,
            elapsed,
            delta / elapsed,
            self.stats.messages,
            self.stats.invalid,
            sorted(self._applied),
        )
        self._last_progress = now
        self._progress_messages = self.stats.messages
