"""Where newly assigned partitions stand: their applied offsets in Redis, checked against the
input topic's incarnation and end. Runs inside the consumer's rebalance callback, where the
consumer must not be polled: it blocks, retrying Redis with backoff, until asked to stop."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from functools import partial
from typing import TypeVar

from loginmetrics.runtime.backoff import Backoff
from loginmetrics.runtime.metrics import WorkerMetrics
from loginmetrics.window import WindowWriter
from loginmetrics.worker.offset_checks import truncated_partitions
from loginmetrics.worker.retry import RetryLater, call_redis

logger = logging.getLogger(__name__)

T = TypeVar("T")
Applied = dict[int, int | None]  # partition -> last offset whose effect is in the window


class PositionReader:
    def __init__(
        self,
        writer: WindowWriter,
        stop: threading.Event,
        backoff: Backoff,
        sleep: Callable[[float], object],
        metrics: WorkerMetrics,
    ) -> None:
        self._writer = writer
        self._stop = stop
        self._backoff = backoff
        self._sleep = sleep
        self._metrics = metrics

    def applied_offsets(self, partitions: list[int]) -> Applied | None:
        """Applied offsets of ``partitions``; None if asked to stop first."""
        return self._blocking(lambda: self._writer.applied_offsets(partitions))

    def adopt_topic(self, topic: str, topic_id: str) -> bool | None:
        """Tie the window's offsets to this incarnation of the input topic; True when it is a
        new one (the old offsets are dropped: its partitions are read from their start), None
        if asked to stop first."""
        found = self._blocking(lambda: (self._writer.adopt_topic(topic_id),))
        if found is None:
            return None
        (incarnation,) = found
        if incarnation is None:
            return False
        logger.warning(
            "topic %s was recreated (its id is %s, the window's offsets were for %s): reading it "
            "from its start; the old offsets %s are dropped",
            topic,
            topic_id,
            incarnation.old_topic_id,
            incarnation.dropped_offsets or "(none)",
        )
        return True

    def restart_truncated(self, applied: Applied, highs: Mapping[int, int]) -> Applied | None:
        """``applied`` with every partition that now ends before its applied offset moved back
        to its end (in Redis too), each logged and counted as a gap; None if asked to stop."""
        result = dict(applied)
        for cut in truncated_partitions(applied, highs):
            moved = self._blocking(
                partial(self._writer.restart_partition, cut.partition, cut.stored, cut.restart_at)
            )
            if moved is None:
                return None
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
            result[cut.partition] = cut.restart_at
        return result

    def _blocking(self, operation: Callable[[], T]) -> T | None:
        """``operation`` retried until Redis answers; None if asked to stop first."""
        delays = self._backoff.delays()
        attempts = 0
        while not self._stop.is_set():
            try:
                return call_redis(operation, "read applied offsets")
            except RetryLater as retry:
                attempts += 1
                logger.warning("%s, attempt %d", retry, attempts)
                self._sleep(next(delays))
        return None
