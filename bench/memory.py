"""Memory of a full window: peak RSS per worker process and Redis memory, at a fixed rate with
``--users`` distinct users (default 1,000,000) all inside the window.

A 300 s window at 20k msg/s takes over five minutes to fill, so by default the window is
shortened (``--window 60``: 1.2 M messages, every user in it) and Redis memory is extrapolated
per bucket: bucket keys live window + bucket + 60 s grace, so a full default window keeps
361 buckets. A worker holds one poll batch at a time, so its RSS does not grow with the window.

    python -m bench.memory --users 1000000 --rate 20000 --window 60
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

from bench import results, stack
from bench.load import produce_at_rate
from bench.stack import (
    WindowProgress,
    fast_producer,
    load_average,
    loginmetrics,
    peak_rss_mib,
    pipeline_env,
    prefix_memory,
    redis_prefix,
    topics,
    used_memory,
    worker_pids,
)
from bench.stream import LoginPayloads
from loginmetrics.window import WindowLayout, WindowReader

DEFAULT_LAYOUT = WindowLayout()
MIB = 1024 * 1024


def run(args: argparse.Namespace) -> dict[str, Any]:
    client = redis.Redis.from_url(args.redis_url)
    logs = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    seconds = args.seconds or args.window + 10
    payloads = LoginPayloads(args.users, seed=args.seed, cover_users=True)
    redis_before = used_memory(client)
    with (
        topics(args.bootstrap_servers, login=4, dlq=1) as names,
        redis_prefix(client) as prefix,
    ):
        env = pipeline_env(
            args.bootstrap_servers,
            args.redis_url,
            prefix,
            input_topic=names["login"],
            dlq_topic=names["dlq"],
            group_id=prefix,
            window=args.window,
        )
        layout = WindowLayout(prefix=prefix, window_seconds=args.window)
        load = load_average()
        with loginmetrics(
            "worker", "--processes", str(args.processes), env=env, log=logs / "worker.log"
        ) as pool:
            pids = worker_pids(pool.pid, args.processes)
            progress = WindowProgress(client, prefix)
            started = time.monotonic()
            sent = produce_at_rate(
                fast_producer(args.bootstrap_servers, **{"linger.ms": 5}),
                names["login"],
                payloads,
                args.rate,
                seconds,
            )
            achieved = sent / (time.monotonic() - started)
            deadline = time.monotonic() + 30
            while progress.totals().total_messages < sent and time.monotonic() < deadline:
                time.sleep(0.2)
            drained = progress.totals().total_messages
            rss = [peak_rss_mib(pid) for pid in pids]
            reader = WindowReader(client, layout)
            window = reader.read(reader.last_complete_window_end())
            keys, key_bytes = prefix_memory(client, prefix)
            redis_after = used_memory(client)
            buckets = len(list(client.scan_iter(match=f"{prefix}:bucket:*:counts", count=1000)))
    client.close()
    per_bucket = key_bytes / max(1, buckets)
    full_window_buckets = DEFAULT_LAYOUT.ttl_seconds // DEFAULT_LAYOUT.bucket_seconds
    return {
        "benchmark": "memory",
        "machine": results.machine(),
        "load_average": load,
        "load_average_end": load_average(),
        "config": vars(args) | {"seconds": seconds},
        "produced": sent,
        "achieved_rate": achieved,
        "kept_up": drained == sent,
        "window_messages": window.total_messages,
        "window_active_users": window.active_users,
        "worker_peak_rss_mib": rss,
        "redis_used_memory_before": redis_before,
        "redis_used_memory_after": redis_after,
        "redis_used_memory_delta": redis_after - redis_before,
        "prefix_keys": keys,
        "prefix_bytes": key_bytes,
        "buckets": buckets,
        "bytes_per_bucket": per_bucket,
        "extrapolated_default_window_buckets": full_window_buckets,
        "extrapolated_default_window_bytes": per_bucket * full_window_buckets,
    }


def summary_line(result: dict[str, Any]) -> str:
    rss = ", ".join(f"{r:.0f}" for r in result["worker_peak_rss_mib"] if r is not None)
    return (
        f"memory at {result['achieved_rate']:,.0f} msg/s, {result['window_active_users']:,} "
        f"distinct users in a {result['config']['window']} s window: worker peak RSS {rss} MiB; "
        f"Redis {result['prefix_bytes'] / MIB:.1f} MiB in {result['buckets']} buckets "
        f"({result['bytes_per_bucket'] / 1024:.1f} KiB each; used_memory "
        f"+{result['redis_used_memory_delta'] / MIB:.1f} MiB) -> 300 s window "
        f"~{result['extrapolated_default_window_bytes'] / MIB:.1f} MiB "
        f"({result['extrapolated_default_window_buckets']} buckets); load {result['load_average']}"
    )


def parser() -> argparse.ArgumentParser:
    parse = stack.parser("memory", __doc__)
    parse.add_argument("--users", type=int, default=1_000_000, help="distinct users")
    parse.add_argument("--rate", type=float, default=20_000, help="messages per second")
    parse.add_argument("--window", type=int, default=60, help="window seconds (300 in production)")
    parse.add_argument("--seconds", type=float, default=0, help="produce time (0: window + 10 s)")
    parse.add_argument("--processes", type=int, default=2)
    parse.add_argument("--seed", type=int, default=13)
    return parse


def main(argv: list[str] | None = None) -> dict[str, Any]:
    return results.run_and_report("memory", parser(), run, summary_line, argv)


if __name__ == "__main__":
    main()
