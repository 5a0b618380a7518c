"""How old the newest data in a metric event is: produce-to-published delay at a fixed rate.

Produces ``--rate`` msg/s for ``--seconds`` into a fresh topic with ``loginmetrics worker
--processes 2`` and ``loginmetrics aggregate --emit-interval I`` running. Ten times a second
the producer sends a *marker*: a valid login whose locale is unique (``mk-<n>``), so the
metric events' exact ``location_distribution`` shows the first event whose window holds it.

Freshness of a marker = the Kafka timestamp (CreateTime, set by the aggregator's producer) of
the first metric event that counts it, minus the wall time the marker was handed to our
producer. It spans produce batching, the broker, the worker's batch, the bucket closing and the
aggregator's tick. The delay until our consumer received the event is reported alongside.

    python -m bench.freshness --rate 20000 --seconds 60 --emit-interval 1
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import redis
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from bench import results, stack
from bench.load import produce_at_rate
from bench.stack import (
    WindowProgress,
    cpu_seconds,
    fast_producer,
    load_average,
    loginmetrics,
    peak_rss_mib,
    pipeline_env,
    redis_prefix,
    topics,
    worker_pids,
)
from bench.stream import LoginPayloads

MARKERS_PER_SECOND = 10


class MetricWatcher(threading.Thread):
    """Reads the metric topic; remembers when each marker locale first appeared."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        super().__init__(daemon=True)
        self._consumer = Consumer(
            {"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4().hex}"}
        )
        self._consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        self.stop = threading.Event()
        self.events = 0
        # marker locale -> (event CreateTime in s, received at wall time)
        self.first_seen: dict[str, tuple[float, float]] = {}

    def run(self) -> None:
        while not self.stop.is_set():
            message = self._consumer.poll(0.2)
            if message is None or message.error() is not None:
                continue
            received = time.time()
            self.events += 1
            _kind, created_ms = message.timestamp()
            event = json.loads(message.value() or b"{}")
            for locale in event.get("location_distribution", {}):
                if locale.startswith("mk-") and locale not in self.first_seen:
                    self.first_seen[locale] = (created_ms / 1000, received)
        self._consumer.close()


def run(args: argparse.Namespace) -> dict[str, Any]:
    client = redis.Redis.from_url(args.redis_url)
    logs = Path(tempfile.mkdtemp(prefix="bench-freshness-"))
    produced: dict[str, float] = {}
    with (
        topics(args.bootstrap_servers, login=4, dlq=1, metrics=1) as names,
        redis_prefix(client) as prefix,
        ExitStack() as running,
    ):
        env = pipeline_env(
            args.bootstrap_servers,
            args.redis_url,
            prefix,
            input_topic=names["login"],
            dlq_topic=names["dlq"],
            metrics_topic=names["metrics"],
            group_id=prefix,
            emit_interval=args.emit_interval,
            # Each marker is a locale of its own: an event must list every one of them, not
            # fold the rarest under "__other__" (the default lists 100).
            max_distribution_values=1000,
        )
        watcher = MetricWatcher(args.bootstrap_servers, names["metrics"])
        watcher.start()
        pool = running.enter_context(
            loginmetrics("worker", "--processes", "2", env=env, log=logs / "worker.log")
        )
        running.enter_context(loginmetrics("aggregate", env=env, log=logs / "aggregate.log"))
        pids = worker_pids(pool.pid, 2)
        producer = fast_producer(args.bootstrap_servers, **{"linger.ms": 5})
        payloads = LoginPayloads(args.users, seed=args.seed)
        progress = WindowProgress(client, prefix)
        # Warm-up: workers join the group, the aggregator takes the lease; no markers yet.
        warmup = produce_at_rate(producer, names["login"], payloads, args.rate, args.warmup)
        load = load_average()
        cpu_before = [cpu_seconds(pid) or 0.0 for pid in pids]
        started = time.monotonic()
        sent = produce_at_rate(
            producer,
            names["login"],
            payloads,
            args.rate,
            args.seconds,
            marker_every=max(1, int(args.rate // MARKERS_PER_SECOND)),
            on_marker=produced.__setitem__,
        )
        produce_seconds = time.monotonic() - started
        cpu_used = [(cpu_seconds(pid) or 0.0) - b for pid, b in zip(pids, cpu_before, strict=True)]
        deadline = time.monotonic() + 3 * args.emit_interval + 15
        while len(watcher.first_seen) < len(produced) and time.monotonic() < deadline:
            time.sleep(0.2)
        totals = progress.totals()
        rss = [peak_rss_mib(pid) for pid in pids]
        watcher.stop.set()
        watcher.join(5)
    client.close()

    to_publish = [
        watcher.first_seen[m][0] - t for m, t in produced.items() if m in watcher.first_seen
    ]
    to_receipt = [
        watcher.first_seen[m][1] - t for m, t in produced.items() if m in watcher.first_seen
    ]

    def figures(delays: list[float]) -> dict[str, float]:
        if not delays:
            return {}
        return {
            "p50": results.percentile(delays, 50),
            "p99": results.percentile(delays, 99),
            "max": max(delays),
            "min": min(delays),
        }

    return {
        "benchmark": "freshness",
        "machine": results.machine(),
        "load_average": load,
        "load_average_end": load_average(),
        "config": vars(args),
        "definition": "metric event CreateTime minus marker hand-off to the producer, seconds",
        "produced": warmup + sent,
        "achieved_rate": sent / produce_seconds,
        "window_total_at_end": totals.total_messages,
        "kept_up": totals.total_messages == warmup + sent,
        "worker_cpu_share": [round(c / produce_seconds, 3) for c in cpu_used],
        "worker_peak_rss_mib": rss,
        "markers": len(produced),
        "markers_seen": len(to_publish),
        "metric_events": watcher.events,
        "delay_to_publish_s": figures(to_publish),
        "delay_to_receipt_s": figures(to_receipt),
    }


def summary_line(result: dict[str, Any]) -> str:
    publish, receipt = result["delay_to_publish_s"], result["delay_to_receipt_s"]
    if not publish:
        return f"freshness: no marker reached a metric event; load {result['load_average_end']}"
    return (
        f"freshness at {result['achieved_rate']:,.0f} msg/s, emit interval "
        f"{result['config']['emit_interval']:g} s: p50 {publish['p50']:.2f} s, "
        f"p99 {publish['p99']:.2f} s to publish (received p50 {receipt['p50']:.2f} s, "
        f"p99 {receipt['p99']:.2f} s); {result['markers_seen']}/{result['markers']} markers; "
        f"kept up: {result['kept_up']}; load {result['load_average']}"
    )


def parser() -> argparse.ArgumentParser:
    parse = stack.parser("freshness", __doc__)
    parse.add_argument("--rate", type=float, default=20_000, help="messages per second")
    parse.add_argument("--seconds", type=float, default=60, help="measured produce time")
    parse.add_argument("--warmup", type=float, default=5, help="unmeasured seconds first")
    parse.add_argument("--emit-interval", type=float, default=1.0)
    parse.add_argument("--users", type=int, default=100_000)
    parse.add_argument("--seed", type=int, default=11)
    return parse


def main(argv: list[str] | None = None) -> dict[str, Any]:
    return results.run_and_report("freshness", parser(), run, summary_line, argv)


if __name__ == "__main__":
    main()
