"""Range-read latency through the tiers, and Redis memory for a whole retention of them.

Fills a fresh prefix as 24 h of ``--rate`` msg/s would leave it: the kept second buckets (fresh
uuid users per message, random IPs, the generator's devices, version and 50 locales), rolled up
by the real rollup script into minutes; older minutes and hours are synthetic, with dense
HyperLogLogs (12 kB each, the size of any HLL past ~3k distinct values, so memory and merge cost
are those of real traffic) and the same distributions. Then times ``RangeReader.read`` for 1 m,
5 m, 1 h and 24 h ranges ending now (p50, p99), and the rollup of one minute and one hour.

    python -m bench.window_read --rate 2000 --reads 200
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import redis

from bench import results, stack
from bench.stack import load_average, redis_prefix, used_memory
from loginmetrics.window import (
    BucketField,
    PartitionAdvance,
    RangeReader,
    Rollup,
    Tier,
    WindowIncrements,
    WindowLayout,
    WindowWriter,
)
from loginmetrics.window.layout import HOUR_SECONDS, MINUTE_SECONDS

MIB = 1024 * 1024
STATES = [f"S{i:02d}" for i in range(50)]  # 50 locales, as the generator's US states
RANGES = {"1m": 60, "5m": 300, "1h": 3600, "24h": 86400}
TEMPLATES = 6  # distinct dense HLLs the synthetic buckets are copies of


def fresh_ids(count: int) -> list[str]:
    return [os.urandom(16).hex() for _ in range(count)]


def random_ips(count: int) -> list[str]:
    return [".".join(str(b) for b in os.urandom(4)) for _ in range(count)]


def distributions(valid: int) -> dict[BucketField, dict[str, float]]:
    """The default generator's mix: two devices, one version, 50 locales."""
    per_state = valid // len(STATES)
    locales = {state: float(per_state) for state in STATES}
    locales[STATES[0]] += valid - per_state * len(STATES)
    return {
        BucketField.DEVICES: {"android": float(valid // 2), "iOS": float(valid - valid // 2)},
        BucketField.VERSIONS: {"2.3.0": float(valid)},
        BucketField.LOCALES: locales,
    }


def write_second(client: redis.Redis, layout: WindowLayout, start: int, rate: int) -> None:
    """One second bucket as the workers leave it at ``rate`` msg/s (5 % invalid)."""
    invalid = rate // 20
    valid = rate - invalid
    pipe = client.pipeline(transaction=False)
    key = {field: layout.bucket_key(start, field) for field in BucketField}
    pipe.pfadd(key[BucketField.USERS], *fresh_ids(valid))
    pipe.pfadd(key[BucketField.IPS], *random_ips(valid))
    for field, members in distributions(valid).items():
        pipe.zadd(key[field], members)
    pipe.hset(key[BucketField.COUNTS], mapping={"valid": valid, "invalid": invalid})
    for field in BucketField:
        pipe.expire(key[field], layout.ttl_seconds)
    pipe.execute()


def dense_templates(client: redis.Redis, prefix: str) -> list[bytes]:
    """DUMPs of dense HyperLogLogs (50k fresh values each)."""
    dumps = []
    for i in range(TEMPLATES):
        key = f"{prefix}:template:{i}"
        for _ in range(10):
            client.pfadd(key, *fresh_ids(5000))
        dump = client.dump(key)
        assert isinstance(dump, bytes)
        dumps.append(dump)
        client.delete(key)
    return dumps


def write_synthetic(
    client: redis.Redis,
    layout: WindowLayout,
    tier: Tier,
    starts: range,
    rate: int,
    hlls: list[bytes],
) -> None:
    """Tier buckets as the rollup would leave them, from copies of dense HLLs."""
    seconds = layout.tier_seconds(tier)
    invalid = rate * seconds // 20
    valid = rate * seconds - invalid
    ttl_ms = layout.tier_ttl_seconds(tier) * 1000
    pipe = client.pipeline(transaction=False)
    for n, start in enumerate(starts):
        key = {field: layout.tier_key(tier, start, field) for field in BucketField}
        pipe.restore(key[BucketField.USERS], ttl_ms, hlls[n % len(hlls)], replace=True)
        pipe.restore(key[BucketField.IPS], ttl_ms, hlls[(n + 1) % len(hlls)], replace=True)
        for field, members in distributions(valid).items():
            pipe.zadd(key[field], members)
            pipe.pexpire(key[field], ttl_ms)
        pipe.hset(key[BucketField.COUNTS], mapping={"valid": valid, "invalid": invalid})
        pipe.pexpire(key[BucketField.COUNTS], ttl_ms)
        if len(pipe) > 2000:
            pipe.execute()
    pipe.execute()


def stream_writes(redis_url: str, prefix: str, partition: int, rate: int, stop: Any) -> None:
    """A worker's Redis side: one batch a tenth of a second into the current bucket, with the
    real apply script, until ``stop`` is set (a separate process, so it takes no GIL here)."""
    client = redis.Redis.from_url(redis_url)
    writer = WindowWriter(client, WindowLayout(prefix=prefix), "bench-logins")
    batch = max(1, rate // 10)
    applied: int | None = None
    while not stop.is_set():
        began = time.monotonic()
        valid = batch - batch // 20
        increments = WindowIncrements(
            users=set(fresh_ids(valid)),
            ips=set(random_ips(valid)),
            devices=Counter({"android": valid // 2, "iOS": valid - valid // 2}),
            versions=Counter({"2.3.0": valid}),
            locales=Counter({STATES[partition]: valid}),
            valid=valid,
            invalid=batch // 20,
        )
        last = (applied or 0) + batch
        writer.apply_batch([PartitionAdvance(partition, applied, last)], increments)
        applied = last
        time.sleep(max(0.0, 0.1 - (time.monotonic() - began)))


@contextmanager
def streaming(redis_url: str, prefix: str, workers: int, rate: int) -> Iterator[None]:
    """``workers`` processes applying ``rate`` msg/s in all while the reads are timed."""
    stop = multiprocessing.Event()
    processes = [
        multiprocessing.Process(
            target=stream_writes, args=(redis_url, prefix, p, rate // max(1, workers), stop)
        )
        for p in range(workers)
    ]
    for process in processes:
        process.start()
    try:
        yield
    finally:
        stop.set()
        for process in processes:
            process.join(10)


def timed(action: Callable[[], Any]) -> float:
    began = time.perf_counter()
    action()
    return (time.perf_counter() - began) * 1000


def tier_memory(client: redis.Redis, layout: WindowLayout) -> dict[str, dict[str, int]]:
    """Keys and MEMORY USAGE bytes of each tier."""
    sizes = {}
    for tier in Tier:
        keys = list(client.scan_iter(match=layout.tier_key_prefix(tier) + "*", count=2000))
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.memory_usage(key, samples=0)
        sizes[tier.value] = {"keys": len(keys), "bytes": sum(int(n or 0) for n in pipe.execute())}
    return sizes


def fill(client: redis.Redis, layout: WindowLayout, rate: int) -> dict[str, Any]:
    """24 h of tiers ending now; the timings of the real rollups it ran."""
    now = int(client.time()[0])
    kept_from = now - layout.ttl_seconds
    for second in range(kept_from, now):
        write_second(client, layout, second, rate)
    first_real_minute = -(-(now - layout.window_seconds) // MINUTE_SECONDS) * MINUTE_SECONDS
    oldest_minute = (now - layout.retention_seconds) // MINUTE_SECONDS * MINUTE_SECONDS
    hlls = dense_templates(client, layout.prefix)
    write_synthetic(
        client, layout, Tier.MINUTE, range(oldest_minute, first_real_minute, 60), rate, hlls
    )
    last_hour = first_real_minute // HOUR_SECONDS * HOUR_SECONDS - HOUR_SECONDS
    oldest_hour = (now - layout.retention_seconds) // HOUR_SECONDS * HOUR_SECONDS
    write_synthetic(client, layout, Tier.HOUR, range(oldest_hour, last_hour, 3600), rate, hlls)
    # The real rollup from here: the kept seconds into minutes, the last hour from its minutes.
    client.set(layout.rolled_key(Tier.MINUTE), first_real_minute - MINUTE_SECONDS)
    client.set(layout.rolled_key(Tier.HOUR), last_hour - HOUR_SECONDS)
    rollup = Rollup(client, layout, max_minutes=1, max_hours=0)
    minute_ms = []
    while True:
        began = time.perf_counter()
        if not rollup.roll(now - 2):
            break
        minute_ms.append((time.perf_counter() - began) * 1000)
    hours = Rollup(client, layout, max_minutes=0, max_hours=1)
    hour_ms = timed(lambda: hours.roll(now - 2))
    return {
        "rolled_minutes": len(minute_ms),
        "minute_rollup_ms": minute_ms,
        "hour_rollup_ms": hour_ms,
    }


def read_latency(reader: RangeReader, layout: WindowLayout, reads: int) -> dict[str, Any]:
    """p50 and p99 of ``reads`` reads of each range length, ending at the newest bucket."""
    latency: dict[str, Any] = {}
    for name, seconds in RANGES.items():
        samples = []
        answer = None
        for _ in range(reads):
            end = layout.bucket_start(reader.server_time())
            began_read = time.perf_counter()
            answer = reader.read(end - seconds, end)
            samples.append((time.perf_counter() - began_read) * 1000)
            time.sleep(random.uniform(0, 0.005))  # not in step with the clock's seconds
        assert answer is not None
        latency[name] = {
            "p50_ms": results.percentile(samples, 50),
            "p99_ms": results.percentile(samples, 99),
            "max_ms": max(samples),
            "buckets_read": {tier.value: n for tier, n in answer.buckets_read.items()},
            "rounded": answer.rounded,
            "valid": answer.totals.valid,
            "active_users": answer.totals.active_users,
        }
    return latency


def run(args: argparse.Namespace) -> dict[str, Any]:
    client = redis.Redis.from_url(args.redis_url)
    before = used_memory(client)
    with redis_prefix(client) as prefix:
        layout = WindowLayout(prefix=prefix, retention_seconds=args.retention)
        began = time.monotonic()
        rollups = fill(client, layout, args.rate)
        filled_s = time.monotonic() - began
        memory = used_memory(client) - before
        tiers = tier_memory(client, layout)
        reader = RangeReader(client, layout)
        with streaming(args.redis_url, prefix, args.workers, args.rate):
            latency = read_latency(reader, layout, args.reads)
    return {
        "config": {
            "rate": args.rate,
            "reads": args.reads,
            "retention": args.retention,
            "workers": args.workers,
        },
        "fill_seconds": filled_s,
        "redis_used_memory_delta": memory,
        "tiers": tiers,
        "latency": latency,
        "minute_rollup_ms": results.spread(rollups["minute_rollup_ms"]),
        "hour_rollup_ms": rollups["hour_rollup_ms"],
        "load_average": load_average(),
        "machine": results.machine(),
    }


def summary_line(result: dict[str, Any]) -> str:
    reads = ", ".join(
        f"{name} p50 {r['p50_ms']:.1f} / p99 {r['p99_ms']:.1f} ms "
        f"({sum(r['buckets_read'].values())} buckets)"
        for name, r in result["latency"].items()
    )
    tiers = ", ".join(
        f"{name} {t['keys']} keys {t['bytes'] / MIB:.1f} MiB" for name, t in result["tiers"].items()
    )
    return (
        f"window read with {result['config']['workers']} writers at "
        f"{result['config']['rate']} msg/s: {reads}; Redis used_memory "
        f"+{result['redis_used_memory_delta'] / MIB:.1f} MiB for {result['config']['retention']} s "
        f"of tiers ({tiers}); one minute's rollup {result['minute_rollup_ms']['median']:.1f} ms "
        f"(median), one hour's {result['hour_rollup_ms']:.1f} ms; load {result['load_average']}"
    )


def parser() -> argparse.ArgumentParser:
    parse = stack.parser("window_read", __doc__)
    parse.add_argument("--rate", type=int, default=2000, help="messages per second")
    parse.add_argument("--reads", type=int, default=200, help="reads per range length")
    parse.add_argument(
        "--workers", type=int, default=2, help="processes applying --rate while reads are timed"
    )
    parse.add_argument("--retention", type=int, default=86400, help="seconds of tiers kept")
    return parse


def main(argv: list[str] | None = None) -> dict[str, Any]:
    return results.run_and_report("window_read", parser(), run, summary_line, argv)


if __name__ == "__main__":
    main()
