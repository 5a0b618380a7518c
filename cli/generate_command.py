"""``loginmetrics generate``: produce login events like the original generator, or load."""

from __future__ import annotations

import logging
import signal
import sys
import time
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import click
from confluent_kafka import KafkaError, Producer

from loginmetrics.cli import options
from loginmetrics.cli.broker import BrokerWatch, topic_partitions
from loginmetrics.cli.config import describe_kafka
from loginmetrics.cli.traffic import LoginTraffic
from loginmetrics.runtime.clients import bootstrap_servers

logger = logging.getLogger(__name__)

DEFAULT_RATE = 2.0
CHUNK = 1000  # messages produced between two looks at the clock, the signals and the progress
PROGRESS_SECONDS = 0.25
FLUSH_STEP_SECONDS = 0.5
FLUSH_TIMEOUT_SECONDS = 60.0


@dataclass
class Run:
    """What a generate run did so far, and whether it has been asked to stop."""

    started: float = field(default_factory=time.monotonic)
    produced: int = 0
    failed: int = 0
    first_failure: str = ""
    stop: bool = False
    force: bool = False

    def on_delivery_error(self, error: KafkaError | None, _message: Any) -> None:
        # Called for failures only (delivery.report.only.error): no Python call per message.
        if error is not None:
            self.failed += 1
            self.first_failure = self.first_failure or error.str()

    def request_stop(self, _signum: int, _frame: FrameType | None) -> None:
        self.force = self.stop  # a second Ctrl-C/SIGTERM gives up on flushing
        self.stop = True


@click.command()
@options.kafka_connection
@options.input_topic
@click.option(
    "--topic",
    default=None,
    show_default="the --input-topic",
    help="Topic to produce to.",
)
@click.option(
    "--rate",
    envvar="LOGINMETRICS_RATE",
    show_envvar=True,
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="MSG/S",
    show_default=f"{DEFAULT_RATE:g}, or as fast as possible with --count",
    help="Messages per second.",
)
@click.option(
    "--count",
    envvar="LOGINMETRICS_COUNT",
    show_envvar=True,
    type=click.IntRange(min=1),
    default=None,
    show_default="until Ctrl-C",
    help="Produce this many messages, then stop.",
)
@click.option(
    "--users",
    envvar="LOGINMETRICS_USERS",
    show_envvar=True,
    type=click.IntRange(min=1),
    default=None,
    show_default="a fresh uuid4 per message",
    help="Draw user_id from a pool of this many users.",
)
@click.option(
    "--invalid-ratio",
    envvar="LOGINMETRICS_INVALID_RATIO",
    show_envvar=True,
    type=click.FloatRange(min=0, max=1),
    default=0.0,
    show_default=True,
    help="Extra share of deliberately invalid messages (not UTF-8, not JSON, arrays, wrong "
    "types, empty values, ...), on top of the 5 % without device_type.",
)
@click.option(
    "--seed",
    envvar="LOGINMETRICS_SEED",
    show_envvar=True,
    type=int,
    default=None,
    help="Seed for a reproducible stream (timestamps still follow the clock).",
)
def generate(
    kafka: dict[str, str],
    input_topic: str,
    topic: str | None,
    rate: float | None,
    count: int | None,
    users: int | None,
    invalid_ratio: float,
    seed: int | None,
) -> None:
    """Produce login events to the input topic.

    The defaults mirror the generator the original system was built against: about 2
    messages per second, a fresh uuid4 user_id and device_id per message, app_version
    2.3.0, one of the 50 US state codes as locale, a random IPv4, the time in epoch
    seconds, and device_type android or iOS, left out of 5 % of the messages (those are
    invalid on purpose: they go to the dead-letter queue as missing_fields). The message
    key is the user_id, so users spread over the partitions.

    \b
    Examples:
      loginmetrics generate                          # ~2 msg/s until Ctrl-C
      loginmetrics generate --count 1000000          # a million, as fast as possible
      loginmetrics generate --rate 500 --users 1000 --invalid-ratio 0.01 --seed 7
    """
    topic = topic or input_topic
    watch = BrokerWatch(bootstrap_servers(kafka))
    run = Run()
    producer = Producer(
        {
            "client.id": "loginmetrics-generate",
            # Full batches, compressed, are what makes --count fast; at 2 msg/s 50 ms is no delay.
            "linger.ms": 50,
            "batch.size": 1_000_000,
            "compression.type": "lz4",
            "queue.buffering.max.messages": 1_000_000,
            "queue.buffering.max.kbytes": 1_048_576,
            "enable.idempotence": True,  # a retried batch is not written twice
            **kafka,  # --kafka-config may tune any of the above
            **watch.client_config(),
            "on_delivery": run.on_delivery_error,
            "delivery.report.only.error": True,
        }
    )
    partitions = topic_partitions(producer, topic, watch)
    per_second = rate if rate is not None else (None if count else DEFAULT_RATE)
    logger.info(
        "producing to %s (partitions %s): %s, %s; Kafka: %s",
        topic,
        ",".join(map(str, partitions)),
        f"{count:,} messages" if count else "until Ctrl-C",
        f"{per_second:g} msg/s" if per_second else "as fast as the broker takes them",
        describe_kafka(kafka),
    )
    traffic = LoginTraffic(seed=seed, users=users, invalid_ratio=invalid_ratio)
    previous = {
        sig: signal.signal(sig, run.request_stop) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        _produce(producer, topic, traffic, run, count, per_second)
        _flush(producer, run)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    _report(run)


def _produce(
    producer: Producer,
    topic: str,
    traffic: LoginTraffic,
    run: Run,
    count: int | None,
    per_second: float | None,
) -> None:
    progress = _Progress(count)
    produce = producer.produce
    run.started = time.monotonic()  # the rate counts from the first message, not the checks
    while not run.stop and (count is None or run.produced < count):
        due = CHUNK if per_second is None else _due(run, per_second, time.monotonic())
        if count is not None:
            due = min(due, count - run.produced)
        for key, value in traffic.messages(due):
            while True:
                try:
                    produce(topic, value, key)
                    break
                except BufferError:  # the local queue is full: let librdkafka catch up
                    producer.poll(0.05)
        run.produced += due
        progress.show(run)
        if per_second is None:
            producer.poll(0)
        else:
            # Sleep in poll (serving delivery reports) until the next message is due.
            next_at = run.started + (run.produced + 1) / per_second
            producer.poll(min(max(0.0, next_at - time.monotonic()), 0.5))
    progress.clear()


def _due(run: Run, per_second: float, now: float) -> int:
    """Messages owed at ``now`` to keep ``per_second`` since the start, at most one chunk."""
    owed = int((now - run.started) * per_second) + 1 - run.produced
    return max(0, min(owed, CHUNK))


def _flush(producer: Producer, run: Run) -> None:
    """Wait for the broker to take every queued message; a second Ctrl-C gives up."""
    deadline = time.monotonic() + FLUSH_TIMEOUT_SECONDS
    while not run.force and time.monotonic() < deadline:
        if producer.flush(FLUSH_STEP_SECONDS) == 0:
            return
    lost = len(producer)
    if lost:
        run.failed += lost
        run.first_failure = run.first_failure or "not delivered before giving up"
        producer.purge()


def _report(run: Run) -> None:
    elapsed = max(time.monotonic() - run.started, 1e-9)
    delivered = run.produced - run.failed
    click.echo(
        f"{delivered:,} messages in {elapsed:.2f} s ({delivered / elapsed:,.0f} msg/s)", err=True
    )
    if run.failed:
        raise click.ClickException(
            f"{run.failed:,} messages were not delivered (first error: {run.first_failure})"
        )


class _Progress:
    """A progress line on stderr, rewritten in place; only when stderr is a terminal."""

    def __init__(self, count: int | None) -> None:
        self._count = count
        self._enabled = sys.stderr.isatty()
        self._shown_at = 0.0

    def show(self, run: Run) -> None:
        now = time.monotonic()
        if not self._enabled or now - self._shown_at < PROGRESS_SECONDS:
            return
        self._shown_at = now
        rate = run.produced / max(now - run.started, 1e-9)
        done = f"{run.produced:,}"
        if self._count:
            done += f" / {self._count:,} ({100 * run.produced / self._count:.0f} %)"
        click.echo(f"\r\x1b[K{done}  {rate:,.0f} msg/s", err=True, nl=False)

    def clear(self) -> None:
        if self._enabled:
            click.echo("\r\x1b[K", err=True, nl=False)
