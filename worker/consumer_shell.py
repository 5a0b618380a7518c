"""The worker's Kafka side: subscribes, answers rebalances, pauses, seeks, commits and closes;
each turn of its loop consumes once and hands the records to the batch step."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import suppress
from functools import partial
from typing import Any

import redis
from confluent_kafka import KafkaException, TopicPartition

from loginmetrics.runtime.backoff import Backoff
from loginmetrics.runtime.health import LoopProbe, NoProbe
from loginmetrics.window import WindowWriter
from loginmetrics.window.layout import TimeBasis
from loginmetrics.worker.batch_step import BatchStep, Fold, LoopState, processing_fold
from loginmetrics.worker.batches import WorkerStats
from loginmetrics.worker.dead_letter_sender import DeadLetterProducer, DeadLetterSender
from loginmetrics.worker.event_fold import WindowClock, fold_event_batch
from loginmetrics.worker.metrics import worker_metrics
from loginmetrics.worker.settings import WorkerSettings
from loginmetrics.worker.topic_inspector import TopicInspector

logger = logging.getLogger(__name__)

PROGRESS_LOG_SECONDS = 10.0
COMMITTED_TIMEOUT_SECONDS = 5.0
# Longest single wait while work is pending: the consumer is polled at least this often, so the
# group keeps the member and rebalances are answered.
PENDING_POLL_SECONDS = 0.5
# Event time: how often a worker tells which of its partitions are caught up (well inside
# event_time.STALE_MARK_SECONDS, after which the aggregator no longer believes it).
CAUGHT_UP_REPORT_SECONDS = 1.0
CLOSE_FLUSH_SECONDS = 10.0


class ConsumerShell:
    """One confluent_kafka.Consumer in the group, driving one ``BatchStep``.

    The applied offset of every owned partition lives in Redis and moves only together with
    the increments (see ``window/apply_batch.lua``); Kafka commits are a courtesy for tools.
    """

    def __init__(
        self,
        settings: WorkerSettings,
        consumer: Any,
        producer: DeadLetterProducer,
        writer: WindowWriter,
        stop: threading.Event,
        *,
        clock: Callable[[], float] = time.monotonic,
        backoff: Backoff | None = None,
        probe: LoopProbe | None = None,
        inspector: TopicInspector | None = None,
    ) -> None:
        self._settings = settings
        self._topic = settings.input_topic
        self._consumer = consumer
        self._stop = stop
        self._clock = clock
        self._metrics = worker_metrics()
        layout = settings.layout
        # A catch-up writes no bucket further ahead of the emitted windows than the buckets
        # the aggregator keeps behind them: Redis holds about twice that, whatever the backlog.
        self._window_clock = WindowClock(
            hold_after=layout.window_seconds
            + layout.event_time.allowed_lateness_seconds
            + layout.event_time.max_delay_seconds
        )
        self._dead_letters = DeadLetterSender(producer, settings.input_topic, settings.dlq_topic)
        self.batch = BatchStep(
            writer,
            self._dead_letters,
            self,
            stop,
            topic=settings.input_topic,
            fold=_fold_for(settings, self._window_clock),
            clock=clock,
            backoff=backoff,
            metrics=self._metrics,
            inspector=inspector,  # checks the window's offsets against the topic on placement
            window_clock=self._window_clock,
        )
        self._delay = 0.0
        self._probe = probe or NoProbe()
        # An exception must not leave librdkafka's rebalance callback (the C binding can turn
        # it into a SystemError later): kept here and raised from step().
        self._callback_error: BaseException | None = None
        self._last_progress = clock()
        self._progress_messages = 0
        self._writer = writer
        self._event_time = settings.layout.time_basis is TimeBasis.EVENT
        self._caught_up_at = clock()

    @property
    def stats(self) -> WorkerStats:
        return self.batch.stats

    # -- lifecycle -------------------------------------------------------------------------

    def run(self) -> None:
        self.subscribe()
        try:
            while not self._stop.is_set():
                self.step()
        finally:
            self.close()

    def subscribe(self) -> None:
        self._consumer.subscribe(
            [self._topic],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_revoke,
        )
        logger.info("consuming %s as group %s", self._topic, self._settings.group_id)

    def step(self) -> float:
        """Consume once (waiting at most until a pending retry is due) and run the batch step;
        return the seconds until its next retry is due (0.0: none pending)."""
        if self._delay > 0:
            timeout = min(self._delay, PENDING_POLL_SECONDS)
        else:
            timeout = self._settings.poll_timeout_seconds
        records = self._consumer.consume(self._settings.batch_size, timeout)
        if self._callback_error is not None:
            error, self._callback_error = self._callback_error, None
            raise error
        self._delay = self.batch.step(records or [])
        self._report_caught_up()
        self._report_health()
        self._log_progress()
        return self._delay

    def close(self) -> None:
        self._dead_letters.flush(CLOSE_FLUSH_SECONDS)
        self._commit(self.batch.owned.committable(), asynchronous=False)
        # Leave the group at once, so the partitions move on without a session timeout. A static
        # member (settings.group_instance_id) does not leave on close(), only on unsubscribe();
        # one that crashed keeps its place for the child the supervisor starts in its slot.
        # A consumer librdkafka declared failed refuses both: the broker drops it by itself.
        with suppress(KafkaException):
            self._consumer.unsubscribe()
        with suppress(KafkaException):
            self._consumer.close()
        stats = self.stats
        logger.info(
            "stopped after %d messages (%d valid, %d invalid) in %d batches",
            stats.messages,
            stats.valid,
            stats.invalid,
            stats.batches,
        )

    # -- what the batch step asks (batch_step.Partitions) ---------------------------------

    def pause(self, partitions: list[int]) -> None:
        self._consumer.pause(self._topic_partitions(partitions))

    def resume(self, partitions: list[int]) -> None:
        self._consumer.resume(self._topic_partitions(partitions))

    def seek(self, partition: int, offset: int) -> None:
        self._consumer.seek(TopicPartition(self._topic, partition, offset))

    def committed(self, partitions: list[int]) -> dict[int, int | None]:
        """The group's committed offsets (None: nothing committed); raises KafkaException."""
        found = self._consumer.committed(
            self._topic_partitions(partitions), timeout=COMMITTED_TIMEOUT_SECONDS
        )
        return {tp.partition: tp.offset if tp.offset >= 0 else None for tp in found}

    def commit(self, applied: Mapping[int, int]) -> None:
        self._commit(applied, asynchronous=True)

    def _commit(self, applied: Mapping[int, int], *, asynchronous: bool) -> None:
        if not applied:
            return
        offsets = [TopicPartition(self._topic, p, last + 1) for p, last in applied.items()]
        try:
            self._consumer.commit(offsets=offsets, asynchronous=asynchronous)
        except KafkaException as exc:
            logger.debug("offset commit skipped: %s", exc)

    def _topic_partitions(self, partitions: list[int]) -> list[TopicPartition]:
        return [TopicPartition(self._topic, p) for p in partitions]

    # -- rebalance: no Redis call here, so a Redis outage never blocks the group -------------

    def _on_assign(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        # Assigned where Kafka's commit says and paused at once: the loop reads where the window
        # stands and seeks there before they are consumed.
        try:
            consumer.incremental_assign(partitions)
            numbers = [tp.partition for tp in partitions]
            self.batch.assigned(numbers)
        except Exception as exc:  # raised again from step(), outside the callback
            self._callback_error = exc
            return
        logger.info("assigned %s", ", ".join(f"{self._topic}[{p}]" for p in numbers))

    def _on_revoke(self, _consumer: Any, partitions: list[TopicPartition]) -> None:
        numbers = [tp.partition for tp in partitions]
        self.batch.revoked(numbers)
        self._metrics.lags(self._topic, dict.fromkeys(numbers, 0))  # its new owner reports it
        logger.info("revoked %s", numbers)

    # -- event time: idle partitions -------------------------------------------------------

    def _report_caught_up(self) -> None:
        """Event time: tell the window which partitions are caught up with their log's end, so
        that one with nothing to read does not hold every window back. Advice only: a failure
        is left to the batch loop, which meets the same Redis."""
        if not self._event_time or self._clock() < self._caught_up_at:
            return
        self._caught_up_at = self._clock() + CAUGHT_UP_REPORT_SECONDS
        owned = self.batch.owned
        consuming = {} if self.batch.state is LoopState.WAITING else owned.consuming()
        marks = {p: p in consuming and self._caught_up(p, consuming[p]) for p in owned}
        try:
            _now, self._window_clock.emitted_end = self._writer.mark_caught_up(marks)
        except redis.RedisError as exc:
            logger.debug("could not mark caught-up partitions: %s", exc)

    def _caught_up(self, partition: int, applied: int | None) -> bool:
        ends = self._consumer.get_watermark_offsets(
            TopicPartition(self._topic, partition), cached=True
        )
        if ends is None or ends[1] < 0:  # not known yet
            return False
        low, high = int(ends[0]), int(ends[1])
        return (low if applied is None else applied + 1) >= high

    # -- health and progress ---------------------------------------------------------------

    def _report_health(self) -> None:
        if self.batch.state is LoopState.WAITING:
            self._probe.beat(False, f"paused: waiting for {self.batch.trouble}")
        elif not self.batch.owned:
            self._probe.beat(False, "no partition assigned")
        else:
            self._probe.beat(True, "consuming")

    def _log_progress(self) -> None:
        now = self._clock()
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
            list(self.batch.owned),
        )
        self._last_progress = now
        self._progress_messages = self.stats.messages


def _fold_for(settings: WorkerSettings, window_clock: WindowClock) -> Fold:
    """The fold of the window's time basis, with the settings' limits bound."""
    layout = settings.layout
    if layout.time_basis is TimeBasis.PROCESSING:
        return processing_fold(settings.max_message_bytes, settings.max_field_bytes)
    return partial(
        fold_event_batch,
        policy=layout.event_time,
        bucket_seconds=layout.bucket_seconds,
        window_clock=window_clock,
        retention_seconds=layout.retention_seconds,
        max_bytes=settings.max_message_bytes,
        max_field_bytes=settings.max_field_bytes,
    )
