"""Event time's catch-up: a backlog of logins spread over a span of event time is produced before
the pipeline starts; `loginmetrics run --time-basis event` then emits every window. Prints how
long the catch-up took, how many windows came out, and the peak Redis memory of the window's
keys, for several backlog spans: in event time memory must stay bounded by the window plus the
allowed lateness, whatever the backlog."""

from __future__ import annotations

import json
import random
import time
import uuid
from pathlib import Path
from tempfile import TemporaryDirectory

import redis
from confluent_kafka import Consumer

from bench.stack import (
    fast_producer,
    loginmetrics,
    parser,
    pipeline_env,
    prefix_memory,
    redis_prefix,
    topics,
)

INTERVAL = 10
DEVICES = ("android", "iOS")
LOCALES = ("TX", "OH", "CA", "NY", "WA", "FL")


def backlog(count: int, span: float, partitions: int, shuffle: float, seed: int) -> list[bytes]:
    """Logins evenly over the ``span`` seconds that ended a minute ago, each up to ``shuffle``
    seconds older than its place (clients' clocks); fresh users and IPs, as the generator's."""
    rng = random.Random(seed)
    start = time.time() - 60 - span
    values = []
    for n in range(count):
        moment = start + span * n / count - rng.uniform(0, shuffle)
        values.append(
            json.dumps(
                {
                    "user_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                    "app_version": "2.3.0",
                    "ip": ".".join(str(rng.randrange(256)) for _ in range(4)),
                    "locale": rng.choice(LOCALES),
                    "device_id": "d",
                    "timestamp": int(moment),
                    "device_type": rng.choice(DEVICES),
                }
            ).encode()
        )
    return values


def catch_up(
    bootstrap: str, redis_url: str, count: int, span: float, processes: int, partitions: int
) -> dict[str, float]:
    client = redis.Redis.from_url(redis_url)
    windows = int(span // INTERVAL)
    with (
        topics(bootstrap, input=partitions, metrics=1, dlq=1) as names,
        redis_prefix(client) as prefix,
        TemporaryDirectory(prefix="catchup-") as scratch,
    ):
        producer = fast_producer(bootstrap)
        for index, value in enumerate(backlog(count, span, partitions, 5.0, seed=count)):
            while True:
                try:
                    producer.produce(names["input"], value, partition=index % partitions)
                    break
                except BufferError:
                    producer.poll(0.05)
        if producer.flush(120):
            raise RuntimeError("the backlog was not produced")
        env = pipeline_env(
            bootstrap,
            redis_url,
            prefix,
            time_basis="event",
            input_topic=names["input"],
            metrics_topic=names["metrics"],
            dlq_topic=names["dlq"],
            group_id=prefix,
            emit_interval=INTERVAL,
        )
        reader = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"{prefix}-reader",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
        reader.subscribe([names["metrics"]])
        emitted = peak_bytes = peak_keys = peak_seconds = 0
        started = time.monotonic()
        next_sample = started
        with loginmetrics(
            "run", "--processes", str(processes), env=env, log=Path(scratch) / "run.log"
        ):
            while emitted < windows and time.monotonic() - started < 600:
                emitted += sum(1 for m in reader.consume(1000, 0.2) if m.error() is None)
                if time.monotonic() >= next_sample:
                    keys, used = prefix_memory(client, prefix)
                    peak_bytes, peak_keys = max(peak_bytes, used), max(peak_keys, keys)
                    # The second buckets alone: what event time keeps while windows can change
                    # (minute and hour tiers are kept for --retention by design).
                    peak_seconds = max(peak_seconds, prefix_memory(client, f"{prefix}:bucket")[1])
                    next_sample = time.monotonic() + 0.5
            seconds = time.monotonic() - started
        reader.close()
    return {
        "windows": emitted,
        "seconds": seconds,
        "peak_mib": peak_bytes / 2**20,
        "peak_keys": peak_keys,
        "peak_seconds_mib": peak_seconds / 2**20,
    }


def main() -> None:
    parse = parser("catchup", __doc__)
    parse.add_argument("--rate", type=float, default=83.0, help="logins per second of event time")
    parse.add_argument("--spans", default="1800,3600,7200", help="backlog spans in seconds")
    parse.add_argument("--processes", type=int, default=2)
    parse.add_argument("--partitions", type=int, default=4)
    args = parse.parse_args()
    print(
        f"{'backlog':>9} {'logins':>8} {'windows':>8} {'catch-up':>9} {'peak Redis':>11} "
        f"{'of which seconds':>17} keys"
    )
    for span in (float(s) for s in args.spans.split(",")):
        count = int(span * args.rate)
        figures = catch_up(
            args.bootstrap_servers, args.redis_url, count, span, args.processes, args.partitions
        )
        print(
            f"{span / 3600:>8.1f}h {count:>8} {figures['windows']:>8.0f} "
            f"{figures['seconds']:>8.1f}s {figures['peak_mib']:>9.1f}MiB "
            f"{figures['peak_seconds_mib']:>14.1f}MiB {figures['peak_keys']:.0f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
