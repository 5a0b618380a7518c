"""Entry point of one worker OS process: builds its own clients, runs the batch loop."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from confluent_kafka import Consumer, Producer

from loginmetrics.runtime.clients import kafka_client_config, redis_client
from loginmetrics.runtime.http_probe import child_probe
from loginmetrics.runtime.metrics import pool_metrics_served
from loginmetrics.runtime.redis_errors import exit_when_fatal
from loginmetrics.runtime.signals import start_supervised_child
from loginmetrics.runtime.supervisor import ChildSpec
from loginmetrics.window import Role, WindowWriter, await_layout_agreement
from loginmetrics.worker.consumer_errors import FatalConsumerError
from loginmetrics.worker.consumer_shell import ConsumerShell
from loginmetrics.worker.join_gate import JoinGate
from loginmetrics.worker.lag import lag_statistics
from loginmetrics.worker.metrics import worker_metrics
from loginmetrics.worker.settings import WorkerSettings
from loginmetrics.worker.topic_inspector import KafkaTopicInspector

logger = logging.getLogger(__name__)


def worker_specs(settings: WorkerSettings, processes: int) -> list[ChildSpec]:
    """The pool: ``processes`` worker processes for the supervisor to keep running."""
    # Subscribing together, they split the partitions in one rebalance; one by one, the first
    # takes them all and hands half over in two (~1.5 s with librdkafka's cooperative rejoin).
    gate = JoinGate.create(processes) if processes > 1 else None
    return [
        ChildSpec(f"loginmetrics-worker-{index}", run_worker_process, (settings, index, gate))
        for index in range(processes)
    ]


@contextmanager
def restart_when_consumer_failed() -> Iterator[None]:
    """A consumer librdkafka declared failed becomes one ERROR line and exit code 1: the
    supervisor starts a fresh process in the slot (with static membership, under the same
    group.instance.id), which can consume again."""
    try:
        yield
    except FatalConsumerError as exc:
        logger.error("%s; exiting so that a fresh worker process takes this slot", exc)
        raise SystemExit(1) from None


def run_worker_process(
    settings: WorkerSettings,
    index: int,
    gate: JoinGate | None = None,
    initializer: Callable[[], None] | None = None,
) -> None:
    """Run until SIGTERM: finish the current batch, commit, leave the group, exit 0. A Redis
    error that will not heal exits with ``EXIT_FATAL`` after one ERROR line."""
    stop = start_supervised_child(initializer)
    client_id = f"loginmetrics-worker-{index}-{os.getpid()}"
    probe = child_probe()
    probe.beat(False, "starting")
    metrics = worker_metrics()  # every figure at 0 from the start (offset gaps, batches...)
    # The slot index makes the consumer a static member: a restarted child reclaims the slot.
    consumer_config = kafka_client_config(
        settings.consumer_config(index), settings.kafka, client_id
    )
    if pool_metrics_served():
        consumer_config.update(lag_statistics(settings.input_topic, metrics.lags))
    consumer = Consumer(consumer_config)
    producer = Producer(
        kafka_client_config(settings.dlq_producer_config(), settings.kafka, client_id)
    )
    window = redis_client(settings.redis_url, settings.redis_sentinel)
    writer = WindowWriter(window, settings.layout, settings.input_topic)
    logger.info("worker %d started (pid %d)", index, os.getpid())
    with exit_when_fatal(), restart_when_consumer_failed():
        await_layout_agreement(window, settings.layout, Role.WORKER, stop, probe)
        inspector = KafkaTopicInspector(settings.kafka, consumer, settings.input_topic)
        shell = ConsumerShell(
            settings,
            consumer,
            producer,
            writer,
            stop,
            probe=probe,
            inspector=inspector,
        )
        if gate is not None:
            # Topic metadata at hand, the JoinGroup follows the subscription within a few ms:
            # with it, 4 of 5 cold starts of 2 processes split in one rebalance, without 1 of 3.
            consumer.list_topics(settings.input_topic, timeout=5)
            gate.pass_together()
        shell.run()
