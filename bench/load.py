"""Produces login traffic at a fixed rate, in small even steps, from the benchmark process."""

from __future__ import annotations

import time
from collections.abc import Callable

from confluent_kafka import Producer

from bench.stack import produce_one
from bench.stream import LoginPayloads

STEP_SECONDS = 0.005


def produce_at_rate(
    producer: Producer,
    topic: str,
    payloads: LoginPayloads,
    rate: float,
    seconds: float,
    marker_every: int = 0,
    on_marker: Callable[[str, float], None] | None = None,
) -> int:
    """Produce ``rate`` messages per second for ``seconds``; returns how many were produced.

    Every ``marker_every``-th message is a valid marker whose locale is unique (``mk-<n>``);
    ``on_marker(locale, wall_time)`` is told the moment it is handed to the producer.
    Falls behind (and says so by its return value) when the machine cannot keep up.
    """
    started = time.monotonic()
    sent = 0
    markers = 0
    while (elapsed := time.monotonic() - started) < seconds:
        due = int(rate * elapsed)
        while sent < due:
            if marker_every and sent % marker_every == 0 and on_marker is not None:
                locale = f"mk-{markers}"
                markers += 1
                key, value = payloads.next_message(locale)
                on_marker(locale, time.time())
            else:
                key, value = payloads.next_message()
            produce_one(producer, topic, key, value, backoff=0.01)
            sent += 1
        producer.poll(0)
        time.sleep(STEP_SECONDS)
    producer.flush(30)
    return sent
