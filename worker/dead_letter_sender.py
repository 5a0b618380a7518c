"""Produces a batch's dead letters and waits for the broker to confirm every one."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException

from loginmetrics.worker.dead_letter import encode_dead_letter
from loginmetrics.worker.fold import RejectedRecord

logger = logging.getLogger(__name__)

FLUSH_SLICE_SECONDS = 1.0
# Refusals of one letter that no retry can change: the letter is given up (its message is still
# counted as invalid in the window). Any other error is retried, paused, until it heals or an
# operator fixes it (a missing topic, a missing permission).
LETTER_REFUSED = frozenset({KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.INVALID_RECORD})


class DeadLetterProducer(Protocol):
    """The part of confluent_kafka.Producer dead letters need."""

    def produce(
        self, topic: str, value: bytes, *, key: bytes, on_delivery: Callable[[Any, Any], None]
    ) -> None: ...
    def poll(self, timeout: float) -> int: ...
    def flush(self, timeout: float) -> int: ...


class DeadLetterSender:
    def __init__(self, producer: DeadLetterProducer, input_topic: str, dlq_topic: str) -> None:
        self._producer = producer
        self._input_topic = input_topic
        self.dlq_topic = dlq_topic

    def deliver(
        self, rejected: Sequence[RejectedRecord], processed_at: datetime, stop: threading.Event
    ) -> list[RejectedRecord] | None:
        """Produce every letter and wait for its delivery report; return those the broker did
        not take (empty: all confirmed), or None when ``stop`` was set while waiting."""
        failed: list[RejectedRecord] = []
        refused: list[tuple[RejectedRecord, bytes]] = []
        for record in rejected:
            letter = encode_dead_letter(record, self._input_topic, processed_at)
            self._produce(record, letter, failed, refused)
        if not self._flush(stop):
            return None
        # The broker judges a whole produce batch: one letter over the topic's limit fails the
        # letters batched with it. Each is sent again alone; what is refused alone is given up.
        for record, letter in refused:
            alone: list[tuple[RejectedRecord, bytes]] = []
            self._produce(record, letter, failed, alone)
            if not self._flush(stop):
                return None
            for given_up, body in alone:
                self._give_up(given_up, len(body))
        return failed

    def _flush(self, stop: threading.Event) -> bool:
        """Wait for every delivery report; False if ``stop`` was set meanwhile. flush() serves
        the reports in slices, so a stop request is seen while the broker is away (librdkafka
        keeps retrying until message.timeout.ms)."""
        while self._producer.flush(FLUSH_SLICE_SECONDS) > 0:
            if stop.is_set():
                return False
        return True

    def flush(self, timeout: float) -> int:
        return self._producer.flush(timeout)

    def _produce(
        self,
        record: RejectedRecord,
        letter: bytes,
        failed: list[RejectedRecord],
        refused: list[tuple[RejectedRecord, bytes]],
    ) -> None:
        def on_delivery(error: KafkaError | None, _message: Any) -> None:
            if error is not None:
                self._not_delivered(record, letter, error, failed, refused)

        # The source position as key: a dead letter sent again after a crash is recognisable.
        key = f"{self._input_topic}:{record.partition}:{record.offset}".encode()
        while True:
            try:
                self._producer.produce(self.dlq_topic, letter, key=key, on_delivery=on_delivery)
                return
            except BufferError:
                self._producer.poll(0.1)  # local queue full: let deliveries drain
            except KafkaException as exc:
                self._not_delivered(record, letter, exc.args[0], failed, refused)
                return

    def _not_delivered(
        self,
        record: RejectedRecord,
        letter: bytes,
        error: KafkaError,
        failed: list[RejectedRecord],
        refused: list[tuple[RejectedRecord, bytes]],
    ) -> None:
        if error.code() in LETTER_REFUSED:
            refused.append((record, letter))
            return
        source = f"{self._input_topic}[{record.partition}]@{record.offset}"
        logger.warning(
            "dead letter of %s not delivered to %s: %s", source, self.dlq_topic, error.str()
        )
        failed.append(record)

    def _give_up(self, record: RejectedRecord, size: int) -> None:
        logger.error(
            "dead letter of %s[%d]@%d (%d bytes) refused by %s for good; it is not sent. "
            "Raise the topic's max.message.bytes, or lower --max-message-bytes",
            self._input_topic,
            record.partition,
            record.offset,
            size,
            self.dlq_topic,
        )
