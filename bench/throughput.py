"""Messages per second of loginmetrics workers against the physical limit, in one run.

Preloads ``--messages`` login messages into a fresh 4-partition topic, then, ``--repeat`` times
per process count, measures two ways (``--modes``):

cold (the default figure): from starting N processes on the preloaded backlog, with a fresh
    group, until every message is done: process start, group join and any rebalance included.
    (a) the ceiling: N spawned processes subscribed as one group, running a bare confluent-kafka
        loop that only reads ``msg.value()`` with the workers' fetch settings; a partition that
        moves starts where the pool is (as the worker's does, from the window);
    (b) ``loginmetrics worker --processes N`` with a fresh Redis prefix and group, until the
        window totals reach the message count.
stable: the steady rate (while 10 % .. 90 % of the messages were done) of
    (a) the ceiling, its partitions assigned (no group) and split over N processes;
    (b) the workers once their group is stable: the same messages are appended again to a
        second topic in one Kafka transaction, the workers start at its end, and the
        transaction is committed once the group is stable: the backlog appears at once.

``--time-basis processing,event`` drains (b) once per time basis in every repetition (the
order alternating), on the same messages: their ``timestamp`` is the second they were made
(as ``loginmetrics generate`` makes them), so event time's buckets hold what live traffic
would. The summary gives both rates and event / processing.

    python -m bench.throughput --messages 1000000 --repeat 3 --processes 1,2
    python -m bench.throughput --messages 300000 --repeat 2 --processes 1 \
        --time-basis processing,event
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import redis
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    ConsumerGroupState,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from bench import results, stack
from bench.stack import (
    WindowProgress,
    cpu_seconds,
    fast_producer,
    load_average,
    loginmetrics,
    peak_rss_mib,
    pipeline_env,
    prefix_memory,
    produce_all,
    redis_prefix,
    stack_pids,
    topics,
    used_memory,
    worker_pids,
)
from bench.stream import LoginPayloads
from loginmetrics.window import WindowLayout, WindowReader, WindowTotals
from loginmetrics.window.layout import TimeBasis
from loginmetrics.worker.settings import WorkerSettings

PARTITIONS = 4


@dataclass
class Drain:
    """One pass over the preloaded topic."""

    kind: str  # "ceiling" or "worker"
    mode: str  # "cold" or "stable"
    processes: int
    # cold: messages / seconds from process start to the last message; stable: msg/s while
    # 10 % .. 90 % of the topic was done
    rate: float
    seconds: float  # cold: from process start to the last message; stable: first to last
    complete: bool
    first_seconds: float | None = None  # cold: from process start to the first message done
    peak_rss_mib: list[float | None] | None = None
    cpu_seconds: list[float] | None = None
    exact: bool | None = None
    redis_used_memory: int | None = None
    prefix_keys: int | None = None
    prefix_bytes: int | None = None
    load_average: list[float] | None = None
    # CPU seconds the broker and Redis used while the workers drained the topic
    stack_cpu_seconds: dict[str, float] | None = None
    time_basis: str | None = None  # the workers' --time-basis (None: a ceiling)


def _observe(
    done: Callable[[], int], total: int, every: float, timeout: float
) -> list[tuple[float, int]]:
    """Sample progress until ``total`` is done (or ``timeout``): (time, done) pairs."""
    deadline = time.monotonic() + timeout
    samples = [(time.monotonic(), done())]
    while samples[-1][1] < total and time.monotonic() < deadline:
        time.sleep(every)
        samples.append((time.monotonic(), done()))
    return samples


def _active_seconds(samples: list[tuple[float, int]]) -> float:
    started = next((at for at, n in samples if n), None)
    return 0.0 if started is None else samples[-1][0] - started


# -- (a) the ceiling: a consumer loop that only reads values -------------------------------------


def _bare_consumer(
    bootstrap: str,
    overrides: dict[str, str],
    topic: str,
    ends: dict[int, int],
    batch: int,
    done: Any,
    out: Any,
) -> None:
    """Read ``topic``'s partitions up to their ``ends``, adding to ``done`` per batch."""
    # The workers' own fetch settings, so the ratio isolates what loginmetrics does per message.
    kafka = {"bootstrap.servers": bootstrap, **overrides}
    config = WorkerSettings(kafka=kafka, redis_url="").consumer_config()
    consumer = Consumer({**config, "group.id": f"bench-ceiling-{uuid.uuid4().hex}"})
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
    unfinished = {p for p, end in ends.items() if end > 0}
    deadline = time.monotonic() + 600
    while unfinished and time.monotonic() < deadline:
        count = 0
        for record in consumer.consume(batch, 0.5):
            if record.error() is None:
                partition: int = record.partition()  # type: ignore[assignment]
                offset: int = record.offset()  # type: ignore[assignment]
                if offset < ends[partition]:
                    record.value()
                    count += 1
                if offset >= ends[partition] - 1:
                    unfinished.discard(partition)
        if count:
            with done.get_lock():
                done.value += count
    out.put(peak_rss_mib(os.getpid()))
    consumer.close()


def ceiling(
    args: argparse.Namespace, topic: str, ends: dict[int, int], processes: int, batch: int
) -> Drain:
    total = sum(ends.values())
    context = multiprocessing.get_context("spawn")
    done = context.Value("q", 0)
    out = context.Queue()
    children = [
        context.Process(
            target=_bare_consumer,
            args=(
                args.bootstrap_servers,
                kafka_overrides(args),
                topic,
                {p: ends[p] for p in range(i, PARTITIONS, processes)},
                batch,
                done,
                out,
            ),
        )
        for i in range(processes)
    ]
    load = load_average()
    for child in children:
        child.start()
    samples = _observe(lambda: done.value, total, 0.02, args.timeout)
    rss = [out.get(timeout=60) for _ in children]
    for child in children:
        child.join()
    return Drain(
        "ceiling",
        "stable",
        processes,
        results.steady_rate(samples, total),
        _active_seconds(samples),
        complete=samples[-1][1] == total,
        peak_rss_mib=rss,
        load_average=load,
    )


# -- (b) loginmetrics workers ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Made:
    """The seconds a stream was made in: its payload timestamps (the generator's clock) and
    its Kafka timestamps lie in ``[first, last]``."""

    first: int
    last: int


def made_since(first: float) -> Made:
    """From ``first`` (``time.time()`` before the first message was made) until now."""
    return Made(int(first), int(time.time()) + 1)


class SpanProgress:
    """Messages in a prefix's buckets of the seconds a stream was made in: where event time
    puts them (a valid login at its timestamp, an invalid one where its partition stands)."""

    def __init__(self, client: redis.Redis, prefix: str, made: Made) -> None:
        span = made.last - made.first + 1
        self._reader = WindowReader(client, WindowLayout(prefix=prefix, window_seconds=span))
        self._end = made.last + 1

    def totals(self) -> WindowTotals:
        return self._reader.read(self._end)


def window_progress(
    client: redis.Redis, prefix: str, basis: TimeBasis, made: Made
) -> WindowProgress | SpanProgress:
    """What the window holds of the drained stream so far, read from its own buckets only:
    those written since now (processing time) or those of the seconds it was made (event)."""
    if basis is TimeBasis.EVENT:
        return SpanProgress(client, prefix, made)
    return WindowProgress(client, prefix)


def workers_stable(
    args: argparse.Namespace,
    client: redis.Redis,
    names: dict[str, str],
    processes: int,
    logs: Path,
    basis: TimeBasis,
    metrics: bool = False,
) -> Drain:
    topic = names["stable"]  # its own topic: the backlog is appended to it on every pass
    with redis_prefix(client) as prefix:
        # The workers start after what is already in the topic: the window holds it as applied.
        ends = end_offsets(args.bootstrap_servers, topic)
        applied_key = WindowLayout(prefix=prefix).applied_offsets_key(topic)
        if any(ends.values()):  # the first pass starts on an empty topic
            client.hset(applied_key, mapping={p: end - 1 for p, end in ends.items() if end})
        producer, expected, made = _held_back_backlog(args, topic)
        settings = {**_worker_options(args, names, prefix, basis), "input_topic": topic}
        if metrics:
            settings["metrics_port"] = _free_port()
        env = pipeline_env(args.bootstrap_servers, args.redis_url, prefix, **settings)
        log = logs / f"{prefix}-worker.log"
        total = sum(expected)
        load = load_average()
        stack = stack_pids(client)
        with loginmetrics("worker", "--processes", str(processes), env=env, log=log) as pool:
            pids = worker_pids(pool.pid, processes)
            stable = _wait_for_stable_group(args.bootstrap_servers, prefix, processes)
            progress = window_progress(client, prefix, basis, made)
            stack_before = {name: cpu_seconds(pid) or 0.0 for name, pid in stack.items()}
            worker_before = [cpu_seconds(pid) or 0.0 for pid in pids]
            producer.commit_transaction(60)  # the backlog appears at once
            samples = _observe(lambda: progress.totals().total_messages, total, 0.05, args.timeout)
            stack_cpu = {
                name: round((cpu_seconds(pid) or 0.0) - stack_before[name], 2)
                for name, pid in stack.items()
            }
            cpu = [
                round((cpu_seconds(pid) or 0.0) - before, 2)
                for pid, before in zip(pids, worker_before, strict=True)
            ]
            totals = progress.totals()
            rss = [peak_rss_mib(pid) for pid in pids]
            keys, key_bytes = prefix_memory(client, prefix)
            redis_memory = used_memory(client)
        if pool.returncode != 0:
            print(f"  worker pool exited {pool.returncode}; log {log}", file=sys.stderr)
        if not stable:
            print(f"  the group never became stable; log {log}", file=sys.stderr)
    return Drain(
        "worker+metrics" if metrics else "worker",
        "stable",
        processes,
        results.steady_rate(samples, total),
        _active_seconds(samples),
        complete=totals.total_messages == total,
        peak_rss_mib=rss,
        cpu_seconds=cpu,
        exact=(totals.valid, totals.invalid) == expected,
        redis_used_memory=redis_memory,
        prefix_keys=keys,
        prefix_bytes=key_bytes,
        load_average=load,
        stack_cpu_seconds=stack_cpu,
        time_basis=basis.value,
    )


def _held_back_backlog(
    args: argparse.Namespace, topic: str
) -> tuple[Producer, tuple[int, int], Made]:
    """The benchmark's messages produced in one open transaction (invisible to the workers,
    which read committed messages only); returns the producer to commit it, the expected
    (valid, invalid) counts and when the messages were made."""
    producer = fast_producer(
        args.bootstrap_servers,
        **{"transactional.id": f"bench-{uuid.uuid4().hex}", "transaction.timeout.ms": 300_000},
    )
    producer.init_transactions(30)
    producer.begin_transaction()
    payloads = LoginPayloads(args.users, invalid_every=args.invalid_every, seed=args.seed)
    first = time.time()
    produce_all(producer, topic, (next(payloads) for _ in range(args.messages)))
    return producer, (payloads.valid, payloads.invalid), made_since(first)


def _wait_for_stable_group(bootstrap: str, group: str, members: int, timeout: float = 60) -> bool:
    """Wait until ``group`` is stable with ``members`` members that each own a partition."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            description = admin.describe_consumer_groups([group])[group].result(10)
        except KafkaException:
            description = None
        if (
            description is not None
            and description.state == ConsumerGroupState.STABLE
            and len(description.members) == members
            and all(m.assignment.topic_partitions for m in description.members)
        ):
            return True
        time.sleep(0.2)
    return False


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4().hex}"})
    try:
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in range(PARTITIONS)
        }
    finally:
        consumer.close()


# -- cold start: from process start on the preloaded backlog -----------------------------------


def _subscribed_consumer(
    bootstrap: str,
    overrides: dict[str, str],
    topic: str,
    group: str,
    ends: dict[int, int],
    batch: int,
    positions: Any,
    out: Any,
) -> None:
    """One member of a bare-loop group: read ``msg.value()`` until the pool has read every
    partition up to its end. ``positions`` (shared) holds each partition's next offset to read;
    a partition assigned to this member starts there, as a worker starts where the window is."""
    kafka = {"bootstrap.servers": bootstrap, **overrides}
    config = WorkerSettings(kafka=kafka, redis_url="").consumer_config()
    consumer = Consumer({**config, "group.id": group})

    def on_assign(member: Any, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            tp.offset = positions[tp.partition]
        member.incremental_assign(partitions)

    consumer.subscribe([topic], on_assign=on_assign)
    total = sum(ends.values())
    deadline = time.monotonic() + 600
    while sum(positions[:]) < total and time.monotonic() < deadline:
        read: dict[int, int] = {}  # partition -> the offset after the last one this batch read
        for record in consumer.consume(batch, 0.1):
            if record.error() is None:
                partition: int = record.partition()  # type: ignore[assignment]
                offset: int = record.offset()  # type: ignore[assignment]
                if offset < ends[partition]:
                    record.value()
                    read[partition] = offset + 1
        if read:
            with positions.get_lock():
                for partition, following in read.items():
                    positions[partition] = max(positions[partition], following)
    out.put(peak_rss_mib(os.getpid()))
    consumer.close()


def ceiling_cold(
    args: argparse.Namespace, topic: str, ends: dict[int, int], processes: int, batch: int
) -> Drain:
    total = sum(ends.values())
    context = multiprocessing.get_context("spawn")
    positions = context.Array("q", PARTITIONS)
    out = context.Queue()
    group = f"bench-ceiling-{uuid.uuid4().hex}"
    children = [
        context.Process(
            target=_subscribed_consumer,
            args=(
                args.bootstrap_servers,
                kafka_overrides(args),
                topic,
                group,
                ends,
                batch,
                positions,
                out,
            ),
        )
        for _ in range(processes)
    ]
    load = load_average()
    started = time.monotonic()
    for child in children:
        child.start()
    samples = _observe(lambda: sum(positions[:]), total, 0.02, args.timeout)
    rss = [out.get(timeout=60) for _ in children]
    for child in children:
        child.join()
    return _cold_drain("ceiling", processes, started, samples, total, rss=rss, load=load)


def workers_cold(
    args: argparse.Namespace,
    client: redis.Redis,
    names: dict[str, str],
    processes: int,
    expected: tuple[int, int],
    made: Made,
    logs: Path,
    basis: TimeBasis,
) -> Drain:
    """``loginmetrics worker --processes N`` started on the preloaded topic with a fresh group
    and window: timed from the start of the command until the window holds every message."""
    total = sum(expected)
    with redis_prefix(client) as prefix:
        options = _worker_options(args, names, prefix, basis)
        env = pipeline_env(args.bootstrap_servers, args.redis_url, prefix, **options)
        log = logs / f"{prefix}-worker.log"
        progress = window_progress(client, prefix, basis, made)
        load = load_average()
        stack = stack_pids(client)
        stack_before = {name: cpu_seconds(pid) or 0.0 for name, pid in stack.items()}
        started = time.monotonic()
        with loginmetrics("worker", "--processes", str(processes), env=env, log=log) as pool:
            samples = _observe(lambda: progress.totals().total_messages, total, 0.05, args.timeout)
            stack_cpu = {
                name: round((cpu_seconds(pid) or 0.0) - stack_before[name], 2)
                for name, pid in stack.items()
            }
            pids = worker_pids(pool.pid, processes)
            # Since each child started: its start-up is part of a cold start.
            cpu = [round(cpu_seconds(pid) or 0.0, 2) for pid in pids]
            rss = [peak_rss_mib(pid) for pid in pids]
            totals = progress.totals()
        if pool.returncode != 0:
            print(f"  worker pool exited {pool.returncode}; log {log}", file=sys.stderr)
    drain = _cold_drain("worker", processes, started, samples, total, rss=rss, load=load)
    drain.cpu_seconds = cpu
    drain.stack_cpu_seconds = stack_cpu
    drain.exact = (totals.valid, totals.invalid) == expected
    drain.time_basis = basis.value
    return drain


def _cold_drain(
    kind: str,
    processes: int,
    started: float,
    samples: list[tuple[float, int]],
    total: int,
    *,
    rss: list[float | None],
    load: list[float],
) -> Drain:
    finished = samples[-1][0] - started
    complete = samples[-1][1] == total
    first = next((at - started for at, done in samples if done), None)
    return Drain(
        kind,
        "cold",
        processes,
        rate=total / finished if complete else 0.0,
        seconds=round(finished, 3),
        complete=complete,
        first_seconds=None if first is None else round(first, 3),
        peak_rss_mib=rss,
        load_average=load,
    )


def _worker_options(
    args: argparse.Namespace, names: dict[str, str], prefix: str, basis: TimeBasis
) -> dict[str, str | int]:
    options: dict[str, str | int] = {
        "input_topic": names["login"],
        "dlq_topic": names["dlq"],
        "group_id": prefix,
        "time_basis": basis.value,
    }
    if args.batch_size:
        options["batch_size"] = args.batch_size
    if args.kafka_config:
        options["kafka_config"] = " ".join(args.kafka_config)
    return options


# -- the run ------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    client = redis.Redis.from_url(args.redis_url)
    counts = [int(n) for n in args.processes.split(",")]
    modes = [m.strip() for m in args.modes.split(",")]
    bases = time_bases(args.time_basis)
    logs = Path(tempfile.mkdtemp(prefix="bench-throughput-"))
    with topics(args.bootstrap_servers, login=PARTITIONS, stable=PARTITIONS, dlq=1) as names:
        payloads = LoginPayloads(args.users, invalid_every=args.invalid_every, seed=args.seed)
        started, first = time.monotonic(), time.time()
        produce_all(
            fast_producer(args.bootstrap_servers),
            names["login"],
            (next(payloads) for _ in range(args.messages)),
        )
        made = made_since(first)
        print(f"preloaded {args.messages} messages in {time.monotonic() - started:.1f} s")
        expected = (payloads.valid, payloads.invalid)
        ends = end_offsets(args.bootstrap_servers, names["login"])
        batch = args.batch_size or WorkerSettings(kafka={}, redis_url="").batch_size

        def passes(processes: int, repetition: int) -> Iterator[Callable[[], Drain]]:
            """The drains of one repetition for one process count, in the order they run: the
            time bases in turn, first one first, then the other (drift hits both alike)."""
            turn = bases if repetition % 2 == 0 else bases[::-1]
            if "cold" in modes:
                yield lambda: ceiling_cold(args, names["login"], ends, processes, batch)
                for basis in turn:
                    yield partial(
                        workers_cold, args, client, names, processes, expected, made, logs, basis
                    )
            if "stable" in modes:
                yield lambda: ceiling(args, names["login"], ends, processes, batch)
                for basis in turn:
                    yield partial(workers_stable, args, client, names, processes, logs, basis)
                    if args.metrics:
                        yield partial(
                            workers_stable, args, client, names, processes, logs, basis, True
                        )

        drains: list[Drain] = []
        for repetition in range(args.repeat):
            for processes in counts:
                for measure in passes(processes, repetition):
                    drain = measure()
                    drains.append(drain)
                    kind = f"{drain.kind} {drain.time_basis}" if drain.time_basis else drain.kind
                    print(
                        f"  [{repetition + 1}/{args.repeat}] {drain.mode:6} {kind:25} "
                        f"x{processes}: {drain.rate:9,.0f} msg/s"
                        + (f" in {drain.seconds:.2f} s" if drain.mode == "cold" else "")
                        + ("" if drain.complete else " (INCOMPLETE)")
                        + ("" if drain.exact in (None, True) else " (NOT EXACT)")
                    )
    client.close()
    return _summarise(args, counts, modes, bases, drains)


def time_bases(option: str) -> list[TimeBasis]:
    """``--time-basis``: a comma-separated list of processing and event, each once."""
    try:
        bases = [TimeBasis(name.strip()) for name in option.split(",") if name.strip()]
    except ValueError as exc:
        raise SystemExit(f"--time-basis: {exc}; choose processing, event or both") from exc
    if not bases or len(set(bases)) != len(bases):
        raise SystemExit(f"--time-basis: name processing and/or event, each once: {option!r}")
    return bases


def _summarise(
    args: argparse.Namespace,
    counts: list[int],
    modes: list[str],
    bases: list[TimeBasis],
    drains: list[Drain],
) -> dict[str, Any]:
    """Per mode, time basis and process count, the figures; per mode and process count,
    event time's rates over processing time's (both measured in this run)."""
    by_mode: dict[str, Any] = {}
    event_to_processing: dict[str, Any] = {}
    for mode in modes:
        by_basis: dict[str, Any] = {}
        for basis in bases:
            by_count: dict[str, Any] = {}
            for processes in counts:
                done = [
                    d
                    for d in drains
                    if d.mode == mode
                    and d.processes == processes
                    and d.time_basis in (None, basis.value)
                ]
                if any(d.kind == "worker" for d in done):
                    by_count[str(processes)] = _figures(args, mode, done)
            # Scale-out: the last process count against the first, same mode, same run.
            if len(by_count) > 1:
                first, last = by_count[str(counts[0])], by_count[str(counts[-1])]
                by_count["scale_out"] = (
                    last["worker_msg_per_s"]["median"] / first["worker_msg_per_s"]["median"]
                )
            by_basis[basis.value] = by_count
        by_mode[mode] = by_basis
        if len(by_basis) == len(TimeBasis):
            event_to_processing[mode] = _event_to_processing(by_basis, counts)
    return {
        "benchmark": "throughput",
        "machine": results.machine(),
        "load_average_end": load_average(),
        "config": vars(args),
        "by_mode": by_mode,
        "event_to_processing": event_to_processing,
        "drains": [asdict(d) for d in drains],
    }


def _event_to_processing(by_basis: dict[str, Any], counts: list[int]) -> dict[str, Any]:
    """Per process count: event time's median msg/s, and msg per worker CPU second, over
    processing time's."""
    ratios: dict[str, Any] = {}
    for processes in map(str, counts):
        event = by_basis[TimeBasis.EVENT.value].get(processes)
        processing = by_basis[TimeBasis.PROCESSING.value].get(processes)
        if event is None or processing is None:
            continue
        ratios[processes] = {
            name: event[name]["median"] / processing[name]["median"]
            for name in ("worker_msg_per_s", "worker_msg_per_cpu_second")
        }
    return ratios


def _figures(args: argparse.Namespace, mode: str, done: list[Drain]) -> dict[str, Any]:
    ceil = [d.rate for d in done if d.kind == "ceiling"]
    work = [d for d in done if d.kind == "worker"]
    rates = [d.rate for d in work]
    # Worker CPU per message: a figure less sensitive to other load than msg/s.
    msgs_per_cpu = [args.messages / sum(c or 0 for c in d.cpu_seconds or [1]) for d in work]
    figures: dict[str, Any] = {
        "ceiling_msg_per_s": results.spread(ceil),
        "worker_msg_per_s": results.spread(rates),
        "ratio_worker_to_ceiling": statistics.median(rates) / statistics.median(ceil),
        "worker_peak_rss_mib": max(max(r or 0 for r in d.peak_rss_mib or [0]) for d in work),
        "worker_msg_per_cpu_second": results.spread(msgs_per_cpu),
        "all_exact": all(d.exact for d in work),
    }
    if mode == "cold":
        figures["worker_seconds"] = results.spread([d.seconds for d in work])
        figures["worker_first_message_seconds"] = results.spread(
            [d.first_seconds or 0.0 for d in work]
        )
        figures["ceiling_seconds"] = results.spread([d.seconds for d in done if d.kind != "worker"])
    else:
        figures["redis_used_memory_bytes"] = max(d.redis_used_memory or 0 for d in work)
        figures["prefix_bytes"] = max(d.prefix_bytes or 0 for d in work)
    measured = [d for d in done if d.kind == "worker+metrics"]
    if measured:
        # Same run, same messages: the cost of --metrics-port on the hot path.
        with_metrics = [d.rate for d in measured]
        figures |= {
            "worker_with_metrics_msg_per_s": results.spread(with_metrics),
            "worker_with_metrics_msg_per_cpu_second": results.spread(
                [args.messages / sum(c or 0 for c in d.cpu_seconds or [1]) for d in measured]
            ),
            "metrics_cost": 1 - statistics.median(with_metrics) / statistics.median(rates),
            "all_exact_with_metrics": all(d.exact for d in measured),
        }
    return figures


def summary_line(result: dict[str, Any]) -> str:
    parts = []
    for mode, by_basis in result["by_mode"].items():
        for basis, by_count in by_basis.items():
            parts += _count_parts(f"{mode} {basis}", by_count)
        for processes, ratio in result["event_to_processing"].get(mode, {}).items():
            parts.append(
                f"{mode} x{processes}: event / processing {ratio['worker_msg_per_s']:.3f} "
                f"(per CPU second {ratio['worker_msg_per_cpu_second']:.3f})"
            )
    return "throughput: " + "; ".join(parts) + f"; load {result['load_average_end']}"


def _count_parts(label: str, by_count: dict[str, Any]) -> list[str]:
    parts = []
    for processes, figures in by_count.items():
        if processes == "scale_out":
            parts.append(f"{label} scale-out {figures:.2f}x")
            continue
        w, c = figures["worker_msg_per_s"], figures["ceiling_msg_per_s"]
        parts.append(
            f"{label} x{processes}: worker {w['median']:,.0f} msg/s "
            f"({w['min']:,.0f}-{w['max']:,.0f}), "
            f"ceiling {c['median']:,.0f} ({c['min']:,.0f}-{c['max']:,.0f}), "
            f"ratio {figures['ratio_worker_to_ceiling']:.2f}, "
            f"peak RSS {figures['worker_peak_rss_mib']:.0f} MiB"
        )
        if "metrics_cost" in figures:
            m = figures["worker_with_metrics_msg_per_s"]
            parts[-1] += (
                f", with --metrics-port {m['median']:,.0f} ({m['min']:,.0f}-{m['max']:,.0f}, "
                f"cost {100 * figures['metrics_cost']:.1f} %)"
            )
    return parts


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def kafka_overrides(args: argparse.Namespace) -> dict[str, str]:
    return dict(item.split("=", 1) for item in args.kafka_config)


def parser() -> argparse.ArgumentParser:
    parse = stack.parser("throughput", __doc__)
    parse.add_argument("--messages", type=int, default=1_000_000)
    parse.add_argument("--repeat", type=int, default=3)
    parse.add_argument("--processes", default="1,2", help="comma-separated process counts")
    parse.add_argument(
        "--modes", default="cold,stable", help="cold (from process start), stable, or both"
    )
    parse.add_argument("--users", type=int, default=100_000, help="size of the repeating user pool")
    parse.add_argument("--invalid-every", type=int, default=20, help="every Nth message is invalid")
    parse.add_argument("--batch-size", type=int, default=0, help="worker --batch-size (0: default)")
    parse.add_argument("--seed", type=int, default=7)
    parse.add_argument(
        "-X",
        "--kafka-config",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="librdkafka setting for the ceiling consumer and the workers alike (repeatable)",
    )
    parse.add_argument(
        "--metrics",
        action="store_true",
        help="also drain with --metrics-port (the pool's figures served), for the cost of metrics",
    )
    parse.add_argument(
        "--time-basis",
        default="processing",
        help="the workers' --time-basis: processing, event, or both (processing,event), each "
        "drained in every repetition on the same messages",
    )
    parse.add_argument("--timeout", type=float, default=300.0, help="most seconds for one drain")
    return parse


def main(argv: list[str] | None = None) -> dict[str, Any]:
    return results.run_and_report("throughput", parser(), run, summary_line, argv)


if __name__ == "__main__":
    main()
