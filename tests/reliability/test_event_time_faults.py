"""Event time through crashes: the replayed hour of tests/integration/test_event_time.py on a
private Redis (AOF, fsync every second as in production), while a seeded schedule SIGKILLs the
worker pool, the aggregator and Redis mid-replay. Every window end is still emitted, the newest
revision of each equals the truth computed from the payloads, and no (end, revision) comes twice.

CI runs CI_SEEDS. More: LOGINMETRICS_EVENT_FAULT_SEED="1,2,3" (those seeds) or "random:N" (N
fresh seeds); a failure names its seed, what struck when, and how to replay it."""

from __future__ import annotations

import contextlib
import os
import random
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import pytest
import redis
from confluent_kafka import Consumer

from loginmetrics.aggregator.lease import read_lease
from loginmetrics.window import WindowLayout
from tests.event_time_support import (
    bucket_counts,
    differences,
    metric_reader,
    newest_revisions,
    produce_logins,
    read_metric_events,
    replay_stream,
    window_end_epoch,
    window_truth,
)
from tests.reliability.conftest import PrivateRedis
from tests.reliability.harness import applied_offsets, tail
from tests.reliability.test_fault_soak import kill_group
from tests.reliability.test_redis_faults import wait_answering
from tests.support import lease_holder_pid, loginmetrics, pipeline_env

pytestmark = [pytest.mark.integration, pytest.mark.reliability, pytest.mark.timeout(240)]

SEEDS_ENV = "LOGINMETRICS_EVENT_FAULT_SEED"
CI_SEEDS = (1,)
LOGINS = 300_000  # over one hour of event time, on 3 of 4 partitions (the 4th stays idle)
SPAN_S = 3_600
PARTITIONS = 4
PROCESSES = 2
WINDOW_S = 300
INTERVAL_S = 10
MAX_DELAY_S = 5
IDLE_AFTER_S = 2
LEASE_S = 3
# Faults strike once this share of the replay's window ends is on the metric topic, one at a
# time: early enough that the workers are still reading the backlog (they run at most window
# + allowed lateness, ~15 min of event time, ahead of the emitted windows), late enough that
# some are out.
STRIKE_AT = (0.05, 0.6)
# Most seconds to wait for a share of the window ends: a whole replay with a pool restart
# (its static members wait out the session timeout, 10 s) included.
REPLAY_TIMEOUT_S = 120
# Most seconds until a victim works again: a pool restarted after a SIGKILL waits out the
# session timeout (10 s) of its predecessor's static members.
HEAL_TIMEOUT_S = 40
# After the last window end arrives, the topic is read this much longer: a duplicate published
# late (by a leader settling its predecessor's claims) shows up here.
SETTLE_S = 3.0


class Kind(StrEnum):
    POOL_KILL = "SIGKILL the worker pool"
    AGGREGATOR_KILL = "SIGKILL the aggregator"
    REDIS_KILL = "SIGKILL Redis, restart it from its AOF"


# How long each victim stays dead before it is started again, drawn uniformly.
DOWN_S = {Kind.POOL_KILL: (0.2, 1.5), Kind.AGGREGATOR_KILL: (0.0, 1.0), Kind.REDIS_KILL: (1.0, 3.0)}


@dataclass(frozen=True, slots=True)
class Fault:
    kind: Kind
    at: float  # share of the replay's window ends emitted when it strikes
    down_s: float

    def __str__(self) -> str:
        return f"at {self.at:.0%} of the windows: {self.kind}, down {self.down_s:.1f} s"


@dataclass(frozen=True, slots=True)
class Schedule:
    seed: int
    faults: tuple[Fault, ...]

    @classmethod
    def draw(cls, seed: int) -> Schedule:
        """Each kind once, in a random order, at random points of the replay."""
        rng = random.Random(seed)
        kinds = list(Kind)
        rng.shuffle(kinds)
        points = sorted(rng.uniform(*STRIKE_AT) for _ in kinds)
        faults = (
            Fault(kind, round(at, 2), round(rng.uniform(*DOWN_S[kind]), 1))
            for kind, at in zip(kinds, points, strict=True)
        )
        return cls(seed, tuple(faults))

    def __str__(self) -> str:
        return f"seed {self.seed}: " + "; ".join(str(fault) for fault in self.faults)


def fault_seeds() -> list[int]:
    """CI_SEEDS, or those LOGINMETRICS_EVENT_FAULT_SEED names: "1,2,3", or "random:N"."""
    raw = os.environ.get(SEEDS_ENV, "").strip()
    if not raw:
        return list(CI_SEEDS)
    if raw.startswith("random:"):
        fresh = random.SystemRandom()
        return [fresh.randrange(1_000, 1_000_000) for _ in range(int(raw.removeprefix("random:")))]
    return [int(seed) for seed in raw.split(",") if seed.strip()]


class Fleet:
    """`loginmetrics worker --processes 2` and `loginmetrics aggregate`, separate processes so
    that either can be killed alone; each started again after a kill, with a log of its own."""

    def __init__(self, env: dict[str, str], logs: Path, stack: ExitStack) -> None:
        self._env = env
        self._logs = logs
        self._stack = stack
        self.started: list[tuple[str, subprocess.Popen[bytes], Path]] = []
        self.pool = self._start("worker", "--processes", str(PROCESSES))
        self.aggregator = self._start("aggregate")

    def _start(self, *command: str) -> subprocess.Popen[bytes]:
        role = command[0]
        log = self._logs / f"{role}-{sum(1 for r, _p, _l in self.started if r == role)}.log"
        process = self._stack.enter_context(loginmetrics(*command, env=self._env, log=log))
        self.started.append((role, process, log))
        return process

    def kill_pool(self, down_s: float) -> str:
        victim = self.pool.pid
        kill_group(self.pool)  # the supervisor and its workers, at once
        time.sleep(down_s)
        self.pool = self._start("worker", "--processes", str(PROCESSES))
        return f"pool {victim} killed, pool {self.pool.pid} started"

    def kill_aggregator(self, down_s: float) -> str:
        victim = self.aggregator.pid
        kill_group(self.aggregator)
        time.sleep(down_s)
        self.aggregator = self._start("aggregate")
        return f"aggregator {victim} killed, aggregator {self.aggregator.pid} started"

    def logs(self, role: str) -> list[Path]:
        return [log for r, _process, log in self.started if r == role]

    def check_running(self) -> None:
        """Fail at once, with its log, when the pool or the aggregator ended by itself."""
        for role, process, log in self.started:
            if process in (self.pool, self.aggregator) and process.poll() is not None:
                raise AssertionError(
                    f"{role} {process.pid} exited {process.returncode}:\n{tail(log)}"
                )


@dataclass(frozen=True, slots=True)
class Struck:
    """A fault as it happened: seconds into the replay, the replay's window ends emitted by
    then (as Redis' last emitted end says), and how long until the victim worked again."""

    fault: Fault
    at_s: float
    windows_out: int
    note: str
    healed_s: float

    def __str__(self) -> str:
        return (
            f"{self.at_s:5.1f} s, {self.windows_out} windows out: {self.fault.kind} ({self.note}; "
            f"working again {self.healed_s:.1f} s later)"
        )


@dataclass
class Replay:
    """The replay under faults: what struck when, and every metric event read so far."""

    schedule: Schedule
    fleet: Fleet
    redis_server: PrivateRedis
    layout: WindowLayout
    source: str  # the input topic
    consumer: Consumer
    expected_ends: list[int]
    events: list[dict[str, Any]] = field(default_factory=list)
    struck: list[Struck] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def emitted_ends(self) -> set[int]:
        return {window_end_epoch(event["window_end"]) for event in self.events}

    def wait_for_share(self, share: float, what: str) -> None:
        want = share * len(self.expected_ends)
        expected = set(self.expected_ends)

        def reached(_seen: list[dict[str, Any]]) -> bool:
            self.fleet.check_running()
            return len(self.emitted_ends() & expected) >= want

        read_metric_events(
            self.consumer, self.events, reached, REPLAY_TIMEOUT_S, f"{what}\n{self.story()}"
        )

    def strike(self, fault: Fault) -> None:
        """Strike ``fault``, start the victim again, and wait until it works: one fault at a
        time (a process started while Redis is down refuses to start, by design)."""
        with contextlib.closing(self.redis_server.client()) as client:
            last = read_lease(client, self.layout).last_emitted or 0
        out = sum(1 for end in self.expected_ends if end <= last)
        began = time.monotonic()
        match fault.kind:
            case Kind.POOL_KILL:
                note = self.fleet.kill_pool(fault.down_s)
            case Kind.AGGREGATOR_KILL:
                note = self.fleet.kill_aggregator(fault.down_s)
            case Kind.REDIS_KILL:
                self.redis_server.kill()
                time.sleep(fault.down_s)
                self.redis_server.start()
                note = "Redis restarted"
        restarted = time.monotonic()
        self.heal(fault.kind)
        healed = time.monotonic() - restarted
        self.struck.append(Struck(fault, began - self.started, out, note, healed))

    def heal(self, kind: Kind) -> None:
        """Until the victim works again: the new pool applies batches, the new aggregator
        leads, Redis answers commands (its append-only file loaded)."""
        with contextlib.closing(self.redis_server.client()) as client:
            wait_answering(client)
            if kind is Kind.POOL_KILL:
                # Its static members come back under new ids: the dead ones' partitions move
                # once the session timeout has passed, so nothing the new pool applied is in
                # yet; what the killed one had sent is.
                applied = applied_total(client, self.layout, self.source)
                self.wait(lambda: applied_total(client, self.layout, self.source) > applied, kind)
            elif kind is Kind.AGGREGATOR_KILL:
                leader = self.fleet.aggregator.pid
                self.wait(lambda: lease_holder_pid(client, self.layout) == leader, kind)

    def wait(self, healed: Callable[[], bool], kind: Kind) -> None:
        deadline = time.monotonic() + HEAL_TIMEOUT_S
        while not healed():
            self.fleet.check_running()
            assert time.monotonic() < deadline, f"not working again after {kind}\n{self.story()}"
            time.sleep(0.1)

    def story(self) -> str:
        struck = "\n".join(f"  {done}" for done in self.struck) or "  nothing yet"
        return (
            f"{self.schedule}\nstruck:\n{struck}\nreplay: {SEEDS_ENV}={self.schedule.seed} "
            ".venv/bin/python -m pytest tests/reliability/test_event_time_faults.py -x -q -s"
        )


def applied_total(client: redis.Redis, layout: WindowLayout, topic: str) -> int:
    """Messages applied to the window, by the applied offsets (0 while Redis cannot say)."""
    try:
        return sum(offset + 1 for offset in applied_offsets(client, layout, topic).values())
    except redis.RedisError:
        return 0


@pytest.mark.parametrize("seed", fault_seeds(), ids=lambda seed: f"seed-{seed}")
def test_a_replayed_hour_through_crashes_gives_every_window_once_and_exact(
    seed: int,
    local_kafka: str,
    private_redis: PrivateRedis,
    redis_prefix: str,
    new_topic: Callable[..., str],
    unique_group_id: str,
    tmp_path: Path,
) -> None:
    schedule = Schedule.draw(seed)
    print(f"\nevent-time faults, {schedule}")
    # An hour of logins that ended a minute ago, produced before the pipeline starts (a
    # backlog: the faults strike during its catch-up); partition 3 stays idle.
    start = float(int(time.time()) - SPAN_S - 60)
    logins = replay_stream(LOGINS, start, SPAN_S, [0, 1, 2], MAX_DELAY_S, seed=21)
    topics = {"input": new_topic(PARTITIONS), "metrics": new_topic(1), "dlq": new_topic(1)}
    produce_logins(local_kafka, topics["input"], logins)
    env = pipeline_env(
        local_kafka,
        private_redis.url,
        redis_prefix,
        time_basis="event",
        max_delay=MAX_DELAY_S,
        idle_after=IDLE_AFTER_S,
        window=WINDOW_S,
        emit_interval=INTERVAL_S,
        lease_seconds=LEASE_S,
        input_topic=topics["input"],
        metrics_topic=topics["metrics"],
        dlq_topic=topics["dlq"],
        group_id=unique_group_id,
    )
    last_data = int(max(login.timestamp for login in logins))
    first_end = (int(start) // INTERVAL_S + 1) * INTERVAL_S
    expected_ends = list(
        range(first_end, (last_data // INTERVAL_S + 1) * INTERVAL_S + 1, INTERVAL_S)
    )
    consumer = metric_reader(local_kafka, topics["metrics"])
    try:
        with ExitStack() as stack:
            fleet = Fleet(env, tmp_path, stack)
            layout = WindowLayout(prefix=redis_prefix)
            replay = Replay(
                schedule, fleet, private_redis, layout, topics["input"], consumer, expected_ends
            )
            for fault in schedule.faults:
                replay.wait_for_share(fault.at, f"{fault.at:.0%} of the windows")
                replay.strike(fault)
            replay.wait_for_share(1.0, "every window end of the replay")
            settled = time.monotonic() + SETTLE_S
            read_metric_events(
                consumer, replay.events, lambda _: time.monotonic() > settled, 2 * SETTLE_S, "-"
            )
            elapsed = time.monotonic() - replay.started
    finally:
        consumer.close()
    check_replay(replay, bucket_counts(logins))
    for role, process, log in fleet.started:
        if process.returncode != -9:  # the survivors stopped on SIGTERM, gracefully
            assert process.returncode == 0, f"{role} exited {process.returncode}: {tail(log)}"
    print(
        f"{len(replay.emitted_ends())} window ends emitted ({len(expected_ends)} of the replay), "
        f"{len(replay.events)} events, in {elapsed:.0f} s; struck:\n"
        + "\n".join(str(done) for done in replay.struck)
    )


def check_replay(replay: Replay, buckets: dict[int, list[Any]]) -> None:
    """No (end, revision) twice; every end from the first to the last; each end's newest
    revision equal to the truth; and each fault struck before the replay was over."""
    events, story = replay.events, replay.story()
    assert all(event["time_basis"] == "event" for event in events)
    pairs = Counter((window_end_epoch(e["window_end"]), e["revision"]) for e in events)
    twice = sorted(pair for pair, count in pairs.items() if count > 1)
    assert not twice, f"(window end, revision) emitted more than once: {twice[:10]}\n{story}"
    newest = newest_revisions(events)
    ends = sorted(newest)
    interval = replay.expected_ends[1] - replay.expected_ends[0]
    missing = sorted(
        set(range(replay.expected_ends[0], max(ends[-1], replay.expected_ends[-1]) + 1, interval))
        - set(ends)
    )
    assert not missing, (
        f"window ends never emitted: {missing[:10]}\n{story}\n"
        f"{missing_end_lines(replay.fleet.logs('aggregate'), missing[:3])}"
    )
    wrong = {
        end: found
        for end, event in newest.items()
        if (found := differences(event, window_truth(buckets, end, WINDOW_S)))
    }
    assert not wrong, (
        f"{len(wrong)} of {len(newest)} windows differ from the truth (newest revision): "
        f"{list(wrong.items())[:3]}\n{story}"
    )
    late = [str(done) for done in replay.struck if done.windows_out >= len(replay.expected_ends)]
    assert not late, f"a fault struck after the replay was over: {late}\n{story}"


def missing_end_lines(logs: list[Path], missing: list[int]) -> str:
    """The aggregators' log lines about each missing window end, and their leadership changes."""
    found = []
    for log in logs:
        for line in log.read_text(errors="replace").splitlines():
            named = any(
                str(end) in line
                or datetime.fromtimestamp(end, UTC).strftime("%Y-%m-%dT%H:%M:%S") in line
                for end in missing
            )
            if named or "leading" in line or "lost leadership" in line or "taking over" in line:
                found.append(f"{log.name}: {line}")
    return "aggregator log lines:\n" + "\n".join(found[-40:])
