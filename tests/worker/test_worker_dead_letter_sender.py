"""Producing dead letters: a letter the broker refuses for good (even sent alone) is given up
with one ERROR that names its source and what to do; any other failure is returned for a retry;
none raises."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from loginmetrics.worker.dead_letter_sender import DeadLetterSender
from loginmetrics.worker.fold import RejectedRecord
from loginmetrics.worker.validation import ErrorCode, Rejection


class ScriptedProducer:
    """Raises or reports, per source offset, what the test says; confirms the rest."""

    def __init__(
        self, raises: dict[int, int], reports: dict[int, int], once: dict[int, int]
    ) -> None:
        self._raises = raises
        self._reports = reports
        self._once = once  # reported the first time only: refused with its batch
        self._queued: list[tuple[Callable[[Any, Any], None], KafkaError | None]] = []
        self.accepted: list[bytes] = []

    def produce(
        self, topic: str, value: bytes, *, key: bytes, on_delivery: Callable[[Any, Any], None]
    ) -> None:
        offset = int(key.decode().rsplit(":", 1)[1])
        if offset in self._raises:
            raise KafkaException(KafkaError(self._raises[offset]))
        code = self._reports.get(offset, self._once.pop(offset, None))
        self._queued.append((on_delivery, None if code is None else KafkaError(code)))
        if code is None:
            self.accepted.append(key)

    def poll(self, timeout: float) -> int:
        return 0

    def flush(self, timeout: float) -> int:
        for callback, error in self._queued:
            callback(error, None)
        self._queued.clear()
        return 0


def rejected(offset: int) -> RejectedRecord:
    rejection = Rejection(ErrorCode.INVALID_JSON, "not JSON")
    return RejectedRecord(0, offset, None, b"\x01" * 10, rejection)


def test_refused_letters_are_given_up_and_transient_failures_returned(
    caplog: pytest.LogCaptureFixture,
) -> None:
    producer = ScriptedProducer(
        raises={1: KafkaError.MSG_SIZE_TOO_LARGE, 2: KafkaError._QUEUE_FULL},
        reports={3: KafkaError.TOPIC_AUTHORIZATION_FAILED, 4: KafkaError.MSG_SIZE_TOO_LARGE},
        once={5: KafkaError.MSG_SIZE_TOO_LARGE},
    )
    sender = DeadLetterSender(producer, "user-login", "dlq")
    with caplog.at_level(logging.WARNING):
        failed = sender.deliver(
            [rejected(n) for n in range(6)], datetime.now(UTC), threading.Event()
        )

    assert failed is not None
    assert sorted(r.offset for r in failed) == [2, 3]  # retried later, paused
    # 5 was refused only with the batch it was in: sent again alone, it is delivered.
    assert producer.accepted == [b"user-login:0:0", b"user-login:0:5"]
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [e.getMessage().split(" (")[0] for e in errors] == [
        "dead letter of user-login[0]@1",
        "dead letter of user-login[0]@4",
    ]
    assert all("max.message.bytes" in e.getMessage() for e in errors)
