"""What librdkafka reports in place of a message: logged, or the end of the process when the
consumer failed for good."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from confluent_kafka import KafkaError

from loginmetrics.runtime.errors import LoginMetricsError

logger = logging.getLogger(__name__)


class FatalConsumerError(LoginMetricsError):
    """librdkafka declared the consumer failed (a fatal error): the process must end, and the
    supervisor starts a fresh one in its place."""


def raise_if_fatal(errors: Iterable[Any]) -> None:
    """Log each consumer error; raise ``FatalConsumerError`` at the first fatal one."""
    for error in errors:
        if _is_fatal(error):
            # e.g. a static member fenced after a coordinator failover: this consumer can never
            # consume again, a new process (same slot) can.
            raise FatalConsumerError(f"the Kafka consumer failed for good: {error}")
        logger.warning("consumer error: %s", error)


def _is_fatal(error: Any) -> bool:
    """The ``_FATAL`` event that reports a failed consumer (whose own flag is not always set),
    or an error flagged fatal."""
    return bool(error.code() == KafkaError._FATAL or error.fatal())
