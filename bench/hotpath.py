"""Where a worker's time per message goes, in one process, without the group or the wait:
real consumed messages are held in memory and fed batch by batch to the worker's own batch
step (fold, dead letters, apply to Redis, commit), timed and optionally profiled.

    python -m bench.hotpath --messages 300000 [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import threading
import time
from typing import Any

import redis
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from bench import results, stack
from bench.stack import (
    fast_producer,
    load_average,
    produce_all,
    redis_prefix,
    topics,
)
from bench.stream import LoginPayloads
from loginmetrics.window import WindowLayout, WindowWriter
from loginmetrics.worker.consumer_shell import ConsumerShell
from loginmetrics.worker.fold import fold_batch
from loginmetrics.worker.settings import WorkerSettings

PARTITIONS = 4


def _consume_all(consumer: Consumer, total: int, batch: int) -> tuple[list[list[Any]], float]:
    """Every message of the topic as the worker's consume() batches, and the seconds spent."""
    batches: list[list[Any]] = []
    count = 0
    spent = 0.0
    idle = 0
    while count < total and idle < 20:
        started = time.perf_counter()
        records = consumer.consume(batch, 0.5)
        spent += time.perf_counter() - started
        idle = 0 if records else idle + 1
        if records:
            batches.append(records)
            count += len(records)
    return batches, spent


def run(args: argparse.Namespace) -> dict[str, Any]:
    client = redis.Redis.from_url(args.redis_url)
    kafka = {"bootstrap.servers": args.bootstrap_servers}
    with (
        topics(args.bootstrap_servers, login=PARTITIONS, dlq=1) as names,
        redis_prefix(client) as prefix,
    ):
        payloads = LoginPayloads(args.users, seed=args.seed)
        produce_all(
            fast_producer(args.bootstrap_servers),
            names["login"],
            (next(payloads) for _ in range(args.messages)),
        )
        settings = WorkerSettings(
            kafka=kafka,
            redis_url=args.redis_url,
            layout=WindowLayout(prefix=prefix),
            input_topic=names["login"],
            dlq_topic=names["dlq"],
            group_id=prefix,
            **({"batch_size": args.batch_size} if args.batch_size else {}),
        )
        consumer = Consumer(settings.consumer_config())
        consumer.assign(
            [TopicPartition(names["login"], p, OFFSET_BEGINNING) for p in range(PARTITIONS)]
        )
        load = load_average()
        batches, consume_seconds = _consume_all(consumer, args.messages, settings.batch_size)
        count = sum(len(b) for b in batches)

        # Fold alone, on its own state, so its figure excludes everything else; best of three.
        fold_seconds = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            for records in batches:
                fold_batch(records, dict.fromkeys(range(PARTITIONS)), settings.max_message_bytes)
            fold_seconds = min(fold_seconds, time.perf_counter() - started)

        producer = Producer(settings.dlq_producer_config())
        writer = WindowWriter(client, settings.layout, settings.input_topic)
        worker = ConsumerShell(settings, consumer, producer, writer, threading.Event())
        worker.batch.assigned(list(range(PARTITIONS)))  # as if just assigned, none applied
        worker.batch.step([])  # placed where the (empty) window stands
        profile = cProfile.Profile() if args.profile else None
        started = time.perf_counter()
        if profile:
            profile.enable()
        for records in batches:
            worker.batch.step(records)
        if profile:
            profile.disable()
        process_seconds = time.perf_counter() - started
        consumer.close()
        applied = worker.stats.messages
    client.close()

    def per_message(seconds: float) -> float:
        return round(seconds / max(1, count) * 1e6, 3)

    result: dict[str, Any] = {
        "benchmark": "hotpath",
        "machine": results.machine(),
        "load_average": load,
        "config": vars(args),
        "messages": count,
        "applied": applied,
        "batches": len(batches),
        "us_per_message": {
            "consume": per_message(consume_seconds),
            "fold": per_message(fold_seconds),
            "batch_step": per_message(process_seconds),
        },
        "batch_step_msg_per_s": count / process_seconds,
    }
    if profile:
        text = io.StringIO()
        pstats.Stats(profile, stream=text).sort_stats("tottime").print_stats(args.top)
        result["profile"] = text.getvalue()
    return result


def summary_line(result: dict[str, Any]) -> str:
    us = result["us_per_message"]
    return (
        f"hotpath: consume() {us['consume']:.2f} us/msg, fold {us['fold']:.2f} us/msg, "
        f"whole batch step (fold + dead letters + apply + commit) {us['batch_step']:.2f} us/msg "
        f"= {result['batch_step_msg_per_s']:,.0f} msg/s; {result['batches']} batches; "
        f"load {result['load_average']}"
    )


def report(result: dict[str, Any]) -> str:
    """The profile, when one was taken, above the summary line."""
    profile = [result["profile"]] if "profile" in result else []
    return "\n".join([*profile, summary_line(result)])


def parser() -> argparse.ArgumentParser:
    parse = stack.parser("hotpath", __doc__)
    parse.add_argument("--messages", type=int, default=300_000)
    parse.add_argument("--users", type=int, default=100_000)
    parse.add_argument("--batch-size", type=int, default=0, help="0: the worker default")
    parse.add_argument("--seed", type=int, default=7)
    parse.add_argument("--profile", action="store_true", help="cProfile the batch step")
    parse.add_argument("--top", type=int, default=25, help="profile lines to print")
    return parse


def main(argv: list[str] | None = None) -> dict[str, Any]:
    return results.run_and_report("hotpath", parser(), run, report, argv)


if __name__ == "__main__":
    main()
