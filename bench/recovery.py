"""How long a SIGKILLed worker's partitions wait before they are applied to again.

``loginmetrics worker --processes N`` consumes a steady stream (``--rate`` msg/s into a fresh
4-partition topic). ``--kills`` times, one process is sent SIGKILL, in turn by slot and only
after it has run ``HEALTHY_RUN_SECONDS`` (so the supervisor restarts it at once, as it would
a long-running worker). Recovery of a kill = from the signal until every partition the victim
owned (from the group's description just before) has a higher applied offset in Redis than
just after the kill. Each ``--membership`` mode is a fresh pool, group and window in the same
run: ``static`` (the default: a member id per slot) and ``dynamic`` (``group.instance.id=``).
Afterwards the window must hold exactly what was produced; the longest stretch of seconds whose
window count fell below three quarters of the produce rate is reported too.

    python -m bench.recovery --rate 20000 --kills 6 --processes 2
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import redis
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from bench import results, stack
from bench.load import produce_at_rate
from bench.stack import (
    WindowProgress,
    fast_producer,
    load_average,
    loginmetrics,
    pipeline_env,
    process_age_seconds,
    redis_prefix,
    topics,
    worker_pids,
)
from bench.stream import LoginPayloads
from loginmetrics.runtime.supervisor import HEALTHY_RUN_SECONDS
from loginmetrics.window import BucketField, WindowLayout

PARTITIONS = 4
POLL_SECONDS = 0.02
# The applied offsets are read this long after the signal: an apply the victim had already
# sent to Redis lands by then and is not mistaken for its successor's.
SETTLE_SECONDS = 0.1
STEADY_SECONDS = 2.0
MEMBERSHIP_KAFKA_CONFIG = {"static": "", "dynamic": "group.instance.id="}


@dataclass
class Kill:
    slot: int
    pid: int
    partitions: list[int]
    seconds: float | None  # until every partition was applied again (None: not within timeout)


@dataclass
class Pass:
    membership: str
    kills: list[Kill] = field(default_factory=list)
    produced: int = 0
    exact: bool = False
    per_second: list[int] = field(default_factory=list)  # window count of each second
    longest_dip_seconds: int = 0
    longest_zero_seconds: int = 0
    load_average: list[float] = field(default_factory=list)


def _members(admin: AdminClient, group: str, log: Path) -> dict[int, tuple[int, list[int]]]:
    """slot -> (pid, partitions) of the pool's members. The slot is the end of a member's
    ``group.instance.id`` (worker/settings.py), or of its client id when it has none (a
    restarted static member keeps its predecessor's client id in the group); the pid is the
    latest ``worker <slot> started (pid <pid>)`` line of the pool's log."""
    try:
        description = admin.describe_consumer_groups([group])[group].result(10)
    except KafkaException:
        return {}
    pids = {
        int(slot): int(pid)
        for slot, pid in re.findall(r"worker (\d+) started \(pid (\d+)\)", log.read_text())
    }
    members = {}
    for member in description.members:
        if member.group_instance_id:
            slot = int(member.group_instance_id.rsplit("-", 1)[1])
        else:  # loginmetrics-worker-<slot>-<pid>
            slot = int(member.client_id.rsplit("-", 2)[1])
        partitions = sorted(tp.partition for tp in member.assignment.topic_partitions)
        if slot in pids:
            members[slot] = (pids[slot], partitions)
    return members


def _applied(client: redis.Redis, key: str, partitions: list[int]) -> list[int]:
    raw = client.hmget(key, [str(p) for p in partitions])
    return [-1 if value is None else int(value) for value in raw]


def _wait_until(condition: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(POLL_SECONDS)
    return False


def one_pass(
    args: argparse.Namespace,
    client: redis.Redis,
    names: dict[str, str],
    membership: str,
    logs: Path,
) -> Pass:
    result = Pass(membership, load_average=load_average())
    admin = AdminClient({"bootstrap.servers": args.bootstrap_servers})
    with redis_prefix(client) as prefix:
        layout = WindowLayout(prefix=prefix)
        applied_key = layout.applied_offsets_key(names["login"])
        options: dict[str, str | int] = {
            "input_topic": names["login"],
            "dlq_topic": names["dlq"],
            "group_id": prefix,
        }
        if MEMBERSHIP_KAFKA_CONFIG[membership]:
            options["kafka_config"] = MEMBERSHIP_KAFKA_CONFIG[membership]
        env = pipeline_env(args.bootstrap_servers, args.redis_url, prefix, **options)
        log = logs / f"{prefix}-{membership}-worker.log"
        payloads = LoginPayloads(args.users, seed=args.seed)
        stop = threading.Event()
        produced: list[int] = []
        producer = fast_producer(args.bootstrap_servers, **{"linger.ms": 5})
        server_start = int(client.time()[0])

        def feed() -> None:
            while not stop.is_set():  # in slices, so that it stops soon after the kills
                produced.append(produce_at_rate(producer, names["login"], payloads, args.rate, 1.0))

        feeder = threading.Thread(target=feed, daemon=True)
        progress = WindowProgress(client, prefix)
        with loginmetrics("worker", "--processes", str(args.processes), env=env, log=log) as pool:
            feeder.start()
            worker_pids(pool.pid, args.processes)
            if not _wait_until(lambda: client.hlen(applied_key) == PARTITIONS, 60):
                raise RuntimeError(f"not every partition was applied to; log {log}")
            for number in range(args.kills):
                slot = number % args.processes
                kill = _kill_one(args, admin, client, prefix, applied_key, slot, log)
                result.kills.append(kill)
                shown = "never" if kill.seconds is None else f"{kill.seconds:.2f} s"
                print(
                    f"  {membership:7} kill {number + 1}/{args.kills}: slot {slot} "
                    f"(pid {kill.pid}, partitions {kill.partitions}) applied again after {shown}"
                )
            stop.set()
            feeder.join()
            result.produced = sum(produced)
            expected = (payloads.valid, payloads.invalid)

            def all_applied() -> bool:
                return progress.totals().total_messages >= result.produced

            _wait_until(all_applied, 120)
            totals = progress.totals()
            result.exact = (totals.valid, totals.invalid) == expected
        server_end = int(client.time()[0])
        result.per_second = _per_second(client, layout, server_start, server_end)
        dips = _dips(result.per_second, args.rate)
        result.longest_dip_seconds, result.longest_zero_seconds = dips
        if pool.returncode != 0:
            print(f"  worker pool exited {pool.returncode}; log {log}")
    return result


def _kill_one(
    args: argparse.Namespace,
    admin: AdminClient,
    client: redis.Redis,
    group: str,
    applied_key: str,
    slot: int,
    log: Path,
) -> Kill:
    """SIGKILL the process in ``slot`` once it had a healthy run and owns partitions."""
    deadline = time.monotonic() + 60
    while True:
        members = _members(admin, group, log)
        if slot in members and members[slot][1] and len(members) == args.processes:
            pid, partitions = members[slot]
            age = process_age_seconds(pid)
            if age is not None and age >= max(args.every, HEALTHY_RUN_SECONDS + 0.5):
                break
        if time.monotonic() > deadline:
            raise RuntimeError(f"slot {slot} never had a healthy run with partitions")
        time.sleep(0.2)
    os.kill(pid, signal.SIGKILL)
    killed_at = time.monotonic()
    time.sleep(SETTLE_SECONDS)
    before = _applied(client, applied_key, partitions)

    def applied_again() -> bool:
        now = _applied(client, applied_key, partitions)
        return all(n > b for n, b in zip(now, before, strict=True))

    recovered = _wait_until(applied_again, args.timeout)
    seconds = round(time.monotonic() - killed_at, 3) if recovered else None
    time.sleep(STEADY_SECONDS)  # the next kill lands on a steady stream again
    return Kill(slot, pid, partitions, seconds)


def _per_second(client: redis.Redis, layout: WindowLayout, first: int, last: int) -> list[int]:
    """valid + invalid of every bucket from ``first`` to ``last`` (1 s buckets)."""
    pipe = client.pipeline(transaction=False)
    seconds = range(first, last + 1, layout.bucket_seconds)
    for second in seconds:
        pipe.hmget(layout.bucket_key(second, BucketField.COUNTS), ["valid", "invalid"])
    return [sum(int(n or 0) for n in counts) for counts in pipe.execute()]


def _dips(per_second: list[int], rate: float) -> tuple[int, int]:
    """The longest runs of seconds below three quarters of the produce rate (one of two
    processes' partitions idle halves the count), and at zero, between the first and last
    second that counted anything."""
    counted = [i for i, n in enumerate(per_second) if n]
    if not counted:
        return 0, 0
    inner = per_second[counted[0] : counted[-1] + 1]
    low = rate * 3 / 4
    return _longest(n < low for n in inner), _longest(n == 0 for n in inner)


def _longest(flags: Any) -> int:
    longest = run = 0
    for flag in flags:
        run = run + 1 if flag else 0
        longest = max(longest, run)
    return longest


def run(args: argparse.Namespace) -> dict[str, Any]:
    client = redis.Redis.from_url(args.redis_url)
    logs = Path(tempfile.mkdtemp(prefix="bench-recovery-"))
    passes: list[Pass] = []
    for membership in args.membership.split(","):
        with topics(args.bootstrap_servers, login=PARTITIONS, dlq=1) as names:
            passes.append(one_pass(args, client, names, membership.strip(), logs))
    client.close()
    by_membership: dict[str, Any] = {}
    for done in passes:
        seconds = [k.seconds for k in done.kills if k.seconds is not None]
        by_membership[done.membership] = {
            "kills": len(done.kills),
            "recovered": len(seconds),
            "recovery_seconds": {
                "p50": results.percentile(seconds, 50) if seconds else None,
                "p99": results.percentile(seconds, 99) if seconds else None,
                "max": max(seconds) if seconds else None,
            },
            "longest_dip_seconds": done.longest_dip_seconds,
            "longest_zero_seconds": done.longest_zero_seconds,
            "exact": done.exact,
        }
    return {
        "benchmark": "recovery",
        "machine": results.machine(),
        "load_average_end": load_average(),
        "config": vars(args),
        "by_membership": by_membership,
        "passes": [asdict(p) for p in passes],
    }


def summary_line(result: dict[str, Any]) -> str:
    parts = []
    for membership, figures in result["by_membership"].items():
        r = figures["recovery_seconds"]
        shown = (
            "none recovered" if r["p50"] is None else f"p50 {r['p50']:.2f} s, p99 {r['p99']:.2f} s"
        )
        parts.append(
            f"{membership}: {figures['recovered']}/{figures['kills']} kills recovered, {shown}; "
            f"longest dip below 3/4 of the rate {figures['longest_dip_seconds']} s, "
            f"at zero {figures['longest_zero_seconds']} s"
            + ("" if figures["exact"] else " (NOT EXACT)")
        )
    return "recovery: " + "; ".join(parts) + f"; load {result['load_average_end']}"


def parser() -> argparse.ArgumentParser:
    parse = stack.parser("recovery", __doc__)
    parse.add_argument("--rate", type=float, default=20_000, help="messages per second")
    parse.add_argument("--processes", type=int, default=2)
    parse.add_argument("--kills", type=int, default=6, help="SIGKILLs per membership mode")
    parse.add_argument(
        "--every", type=float, default=0.0, help="least seconds a victim has run (else healthy run)"
    )
    parse.add_argument(
        "--membership", default="static,dynamic", help="static, dynamic, or both (one run)"
    )
    parse.add_argument("--users", type=int, default=100_000)
    parse.add_argument("--seed", type=int, default=7)
    parse.add_argument("--timeout", type=float, default=60.0, help="most seconds for one recovery")
    return parse


def main(argv: list[str] | None = None) -> dict[str, Any]:
    return results.run_and_report("recovery", parser(), run, summary_line, argv)


if __name__ == "__main__":
    main()
