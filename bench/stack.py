"""What every benchmark needs from the local stack: fresh topics and Redis prefixes (removed
afterwards), the worker and aggregator as real subprocesses, and process/Redis memory figures.
The integration tests drive the stack with the same helpers (``tests.support`` imports them)."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import redis
from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from loginmetrics.window import WindowLayout, WindowReader, WindowTotals

ADMIN_TIMEOUT_S = 30.0
RESULTS = Path(__file__).resolve().parent / "results"


def parser(module: str, description: str | None) -> argparse.ArgumentParser:
    """The command line of ``python -m bench.<module>``, taking the stack's addresses
    (``KAFKA_BOOTSTRAP_SERVERS`` and ``REDIS_URL``, else the local stack)."""
    parse = argparse.ArgumentParser(
        prog=f"python -m bench.{module}",
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parse.add_argument(
        "--bootstrap-servers", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    )
    parse.add_argument(
        "--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    return parse


def bench_id() -> str:
    return f"bench-{uuid.uuid4().hex[:10]}"


@contextmanager
def topics(bootstrap: str, **partitions: int) -> Iterator[dict[str, str]]:
    """Fresh topics ``<bench id>-<role>`` with the given partition counts; deleted afterwards."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    run = bench_id()
    names = {role: f"{run}-{role}" for role in partitions}
    specs = [
        NewTopic(names[r], num_partitions=n, replication_factor=1) for r, n in partitions.items()
    ]
    for future in admin.create_topics(specs).values():
        future.result(timeout=ADMIN_TIMEOUT_S)
    try:
        for role, name in names.items():
            wait_for_leaders(admin, name, partitions[role])
        yield names
    finally:
        for future in admin.delete_topics(list(names.values())).values():
            with suppress(KafkaException):
                future.result(timeout=ADMIN_TIMEOUT_S)


def wait_for_leaders(
    admin: AdminClient, topic: str, partitions: int, timeout: float = ADMIN_TIMEOUT_S
) -> None:
    """Wait until every partition of a new ``topic`` has a leader."""
    # CreateTopics returns before every partition has a leader; producing earlier fails.
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        metadata = admin.list_topics(topic=topic, timeout=timeout).topics.get(topic)
        if (
            metadata is not None
            and metadata.error is None
            and len(metadata.partitions) == partitions
            and all(p.leader >= 0 for p in metadata.partitions.values())
        ):
            return
        time.sleep(0.1)
    raise TimeoutError(f"topic {topic} has no leader for every partition")


def produce_one(
    producer: Producer, topic: str, key: bytes | None, value: bytes | None, backoff: float
) -> None:
    """``producer.produce``, waiting out a full local queue (BufferError) by serving delivery
    reports for ``backoff`` seconds at a time."""
    while True:
        try:
            producer.produce(topic, value, key=key)
            return
        except BufferError:
            producer.poll(backoff)


def fast_producer(bootstrap: str, **overrides: Any) -> Producer:
    """A producer tuned for loading a topic quickly (big batches, deep local queue)."""
    return Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 20,
            "batch.size": 1_000_000,
            "queue.buffering.max.messages": 500_000,
            "message.max.bytes": 2_000_000,
            **overrides,
        }
    )


def produce_all(
    producer: Producer, topic: str, messages: Iterable[tuple[bytes, bytes | None]]
) -> int:
    sent = 0
    for key, value in messages:
        produce_one(producer, topic, key, value, backoff=0.05)
        sent += 1
    if producer.flush(120) != 0:
        raise RuntimeError(f"not every message reached {topic}")
    return sent


@contextmanager
def redis_prefix(client: redis.Redis) -> Iterator[str]:
    """A fresh key prefix; every key under it is deleted afterwards."""
    prefix = bench_id()
    try:
        yield prefix
    finally:
        delete_prefix(client, prefix)


def delete_prefix(client: redis.Redis, prefix: str) -> None:
    batch: list[bytes] = []
    for key in client.scan_iter(match=f"{prefix}:*", count=1000):
        batch.append(key)
        if len(batch) >= 1000:
            client.delete(*batch)
            batch.clear()
    if batch:
        client.delete(*batch)


def prefix_memory(client: redis.Redis, prefix: str) -> tuple[int, int]:
    """Keys under ``prefix`` and the sum of their MEMORY USAGE (bytes)."""
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.memory_usage(key, samples=0)
    return len(keys), sum(int(n or 0) for n in pipe.execute())


def used_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def pipeline_env(
    bootstrap: str, redis_url: str, prefix: str, **settings: str | int
) -> dict[str, str]:
    """Environment for a `loginmetrics` process: connection plus LOGINMETRICS_<OPTION>s."""
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "REDIS_URL": redis_url,
        "LOGINMETRICS_REDIS_PREFIX": prefix,
    }
    env.update({f"LOGINMETRICS_{name.upper()}": str(value) for name, value in settings.items()})
    return env


@contextmanager
def loginmetrics(
    *args: str, env: dict[str, str], log: Path, stop_timeout: float = 40.0
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `loginmetrics ARGS` in its own session; SIGTERM it afterwards and check it exits 0."""
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "loginmetrics", *args],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield process
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(stop_timeout)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
                    raise AssertionError(
                        f"loginmetrics {' '.join(args)} did not stop on SIGTERM; log {log}"
                    ) from None


def child_pids(parent: int) -> list[int]:
    """Processes a supervisor spawned (not multiprocessing's resource tracker)."""
    pids: list[int] = []
    for task in Path(f"/proc/{parent}/task").iterdir():
        try:
            children = (task / "children").read_text().split()
        except FileNotFoundError:  # a thread that ended meanwhile
            continue
        for pid in children:
            try:
                command = Path(f"/proc/{pid}/cmdline").read_bytes()
            except FileNotFoundError:
                continue
            if b"spawn_main" in command:
                pids.append(int(pid))
    return pids


def worker_pids(supervisor_pid: int, expected: int, timeout: float = 30.0) -> list[int]:
    deadline = time.monotonic() + timeout
    pids = child_pids(supervisor_pid)
    while len(pids) < expected and time.monotonic() < deadline:
        time.sleep(0.1)
        pids = child_pids(supervisor_pid)
    return pids


def peak_rss_mib(pid: int) -> float | None:
    """VmHWM (peak resident set) of a live process, MiB."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time a live process has used, seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_age_seconds(pid: int) -> float | None:
    """Seconds since a live process started."""
    try:
        started = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (FileNotFoundError, ProcessLookupError):
        return None
    return uptime - started / os.sysconf("SC_CLK_TCK")


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


class WindowProgress:
    """Messages in a prefix's window since a start time: a cheap read of only the buckets
    written since then (the window read of ``window.read`` over a window that grows)."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self._client = client
        self._prefix = prefix
        self._start = WindowReader(client, WindowLayout(prefix=prefix)).last_complete_window_end()

    def totals(self) -> WindowTotals:
        probe = WindowReader(self._client, WindowLayout(prefix=self._prefix))
        end = probe.last_complete_window_end() + 1  # include the bucket being written
        span = max(1, end - self._start + 1)
        layout = WindowLayout(prefix=self._prefix, window_seconds=span)
        return WindowReader(self._client, layout).read(end)


def stack_pids(client: redis.Redis) -> dict[str, int]:
    """The local broker (``make stack-up``'s pid file) and the Redis server, where known."""
    pids = {"redis": int(client.info("server")["process_id"])}
    pid_file = RESULTS.parent.parent / ".stack" / "kafka" / "kafka.pid"
    if pid_file.exists():
        pids["broker"] = int(pid_file.read_text().strip())
    return pids
