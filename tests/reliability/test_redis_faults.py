"""Redis crashes mid-stream: SIGKILLed and restarted from its append-only file, or SIGKILLed
as the primary of a Sentinel-managed pair so that the replica is promoted (losing the writes it
had not replicated yet). Workers and the aggregator ride through by themselves: no worker
process restarts, the final window equals the ground truth, every dead letter is there, and
metric events resume."""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from loginmetrics.runtime.clients import SentinelConfig, redis_client
from tests.reliability.conftest import LOOPBACK, PrivateRedis, WorkerRun, free_port
from tests.reliability.harness import (
    Feeder,
    applied_offsets,
    check_dead_letters,
    read_topic,
    tail,
    wait_for_total,
    wait_until,
)
from tests.support import (
    MetricEvents,
    assert_matches,
    child_pids,
    loginmetrics,
    planned_stream,
    truth_of,
)

pytestmark = [pytest.mark.integration, pytest.mark.reliability, pytest.mark.timeout(240)]

PARTITIONS = 4
PROCESSES = 2
MESSAGES = 200_000
RATE = 10_000  # 20 s of stream
FAULT_AT = 0.4  # share of the stream in the window when the fault strikes
MASTER = "window"


@dataclass
class FaultReport:
    produced: int
    invalid: int
    dead_letter_duplicates: int
    longest_event_gap_s: float
    repeated_window_ends: int
    outage_s: float


def run_through_fault(
    *,
    kafka: str,
    run: WorkerRun,
    metrics_topic: str,
    window: Callable[[], redis.Redis],
    fault: Callable[[], float],
    tmp_path: Path,
    fenced_restarts: bool = False,
) -> FaultReport:
    """Stream MESSAGES through 2 workers and an aggregator, call ``fault`` (which returns how
    long the service was unavailable) once FAULT_AT of them is in the window, and check the
    end. ``fenced_restarts``: the fault may get static members fenced (a Kafka coordinator
    lost), and those, only those, restart."""
    stream = planned_stream(MESSAGES, users=20_000, invalid_every=40)
    aggregator_env = {**run.env, "LOGINMETRICS_METRICS_TOPIC": metrics_topic}
    aggregator_env |= {"LOGINMETRICS_EMIT_INTERVAL": "1", "LOGINMETRICS_LEASE_SECONDS": "3"}
    aggregator_log = tmp_path / "aggregator.log"
    metrics = MetricEvents(kafka, metrics_topic)
    client = window()
    try:
        with (
            loginmetrics("worker", "--processes", str(PROCESSES), env=run.env, log=run.log) as pool,
            loginmetrics("aggregate", env=aggregator_env, log=aggregator_log),
            Feeder(kafka, run.source, stream, rate=RATE) as feeder,
        ):
            wait_until(
                lambda: applied_total(client, run) >= FAULT_AT * MESSAGES,
                120,
                "the stream to fill the window",
                run.log,
            )
            workers = sorted(child_pids(pool.pid))
            client.close()
            outage = fault()
            client = window()
            fault_over_ms = time.time() * 1000
            feeder.wait_finished(120)
            produced = feeder.stop()
            totals = wait_for_total(client, run.layout, produced, timeout=120, log=run.log)
            metrics.wait_for(
                lambda: metrics.count_after(fault_over_ms + 3000) >= 3,
                30,
                "metric events after the fault",
            )
            if fenced_restarts:
                assert len(child_pids(pool.pid)) == len(workers), "every slot has its worker"
            else:
                assert sorted(child_pids(pool.pid)) == workers, "no worker process restarted"
        assert pool.returncode == 0, tail(run.log)
        text = run.log.read_text()
        # With fenced_restarts, a worker may end only as static membership allows: fenced by a
        # coordinator that moved or restarted, then started afresh in its slot.
        allowed = text.count("the Kafka consumer failed for good") if fenced_restarts else 0
        assert text.count(" exited with code ") == allowed, tail(run.log)

        truth = truth_of(feeder.produced_messages)
        assert_matches(totals, truth)
        duplicates, _codes = check_dead_letters(
            read_topic(kafka, run.dlq), feeder.expected_dead_letters(), run.source
        )
        ends = [end for end, _at in metrics.events]
        times = sorted(at for _end, at in metrics.events)
        gaps = [(b - a) / 1000 for a, b in itertools.pairwise(times)]
        return FaultReport(
            produced=produced,
            invalid=truth.invalid,
            dead_letter_duplicates=duplicates,
            longest_event_gap_s=max(gaps, default=0.0),
            repeated_window_ends=len(ends) - len(set(ends)),
            outage_s=outage,
        )
    finally:
        client.close()
        metrics.close()


def applied_total(client: redis.Redis, run: WorkerRun) -> int:
    """Messages the window holds, as the sum of applied offsets (cheap to poll)."""
    try:
        return sum(o + 1 for o in applied_offsets(client, run.layout, run.source).values())
    except redis.RedisError:
        return 0


def wait_applied(client: redis.Redis, run: WorkerRun, count: int) -> None:
    wait_until(
        lambda: applied_total(client, run) == count, 60, f"{count} messages applied", run.log
    )


def wait_answering(client: redis.Redis, timeout: float = 60) -> None:
    """Until Redis answers commands (after loading its append-only file, or a promotion)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.dbsize()  # refused while loading, unlike PING
            return
        except redis.RedisError:
            assert time.monotonic() < deadline, "Redis did not come back"
            time.sleep(0.1)


def test_redis_sigkilled_and_restarted_from_its_aof_loses_and_doubles_nothing(
    local_kafka: str,
    private_redis: PrivateRedis,
    worker_run: Callable[..., WorkerRun],
    new_topic: Callable[..., str],
    tmp_path: Path,
) -> None:
    run = worker_run(private_redis.url, PARTITIONS, batch_size=2_000)

    def kill_and_restart() -> float:
        private_redis.kill()
        down_from = time.monotonic()
        time.sleep(3)
        private_redis.start()
        with contextlib.closing(private_redis.client()) as client:
            wait_answering(client)
        return time.monotonic() - down_from

    report = run_through_fault(
        kafka=local_kafka,
        run=run,
        metrics_topic=new_topic(1),
        window=private_redis.client,
        fault=kill_and_restart,
        tmp_path=tmp_path,
    )
    assert report.repeated_window_ends == 0, "each window end is published once"
    print(f"Redis SIGKILL + AOF restart: {report}")


class Sentinels:
    """Three redis-sentinel processes of this test, watching one primary as MASTER."""

    def __init__(self, state: Path, primary_port: int) -> None:
        self.ports = [free_port() for _ in range(3)]
        self._dirs = [state / f"sentinel-{port}" for port in self.ports]
        self._primary_port = primary_port

    def start(self) -> None:
        for port, folder in zip(self.ports, self._dirs, strict=True):
            folder.mkdir(parents=True)
            config = folder / "sentinel.conf"
            config.write_text(
                f"port {port}\nbind {LOOPBACK}\ndaemonize yes\ndir {folder}\n"
                f"pidfile {folder / 'sentinel.pid'}\nlogfile {folder / 'sentinel.log'}\n"
                f"sentinel monitor {MASTER} {LOOPBACK} {self._primary_port} 2\n"
                f"sentinel down-after-milliseconds {MASTER} 1000\n"
                f"sentinel failover-timeout {MASTER} 10000\n"
            )
            subprocess.run(["redis-sentinel", str(config)], check=True, timeout=30)
        deadline = time.monotonic() + 30
        while not all(self._sees_replica(port) for port in self.ports):
            assert time.monotonic() < deadline, "the sentinels never saw the replica"
            time.sleep(0.2)

    def _sees_replica(self, port: int) -> bool:
        client = redis.Redis(LOOPBACK, port, socket_timeout=2)
        try:
            return bool(client.sentinel_slaves(MASTER))
        except redis.RedisError:
            return False
        finally:
            client.close()

    def primary_port(self) -> int | None:
        client = redis.Redis(LOOPBACK, self.ports[0], socket_timeout=2)
        try:
            address = client.sentinel_get_master_addr_by_name(MASTER)
        except redis.RedisError:
            return None
        finally:
            client.close()
        return int(address[1]) if isinstance(address, tuple) else None

    def stop(self) -> None:
        for folder in self._dirs:
            pid_file = folder / "sentinel.pid"
            if pid_file.exists():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid_file.read_text()), signal.SIGTERM)

    @property
    def config(self) -> SentinelConfig:
        return SentinelConfig(tuple((LOOPBACK, port) for port in self.ports), MASTER)


def wait_in_sync(primary: PrivateRedis, replica: PrivateRedis, timeout: float = 30) -> None:
    """Until the replica holds everything the primary has written."""
    source, copy = primary.client(), replica.client()
    deadline = time.monotonic() + timeout
    try:
        while True:
            written = source.info("replication")["master_repl_offset"]
            state = copy.info("replication")
            if state["master_link_status"] == "up" and state["slave_repl_offset"] >= written:
                return
            assert time.monotonic() < deadline, f"the replica is not in sync: {state}"
            time.sleep(0.1)
    finally:
        source.close()
        copy.close()


@pytest.fixture
def replicated_redis(tmp_path: Path) -> Iterator[tuple[PrivateRedis, PrivateRedis, Sentinels]]:
    primary = PrivateRedis(tmp_path / "primary")
    primary.start()
    replica = PrivateRedis(tmp_path / "replica", args=f"--replicaof {LOOPBACK} {primary.port}")
    sentinels = Sentinels(tmp_path, primary.port)
    try:
        replica.start()
        sentinels.start()
        wait_in_sync(primary, replica)  # its first full copy may wait for diskless sync's delay
        yield primary, replica, sentinels
    finally:
        sentinels.stop()
        replica.stop()
        primary.stop()


def test_a_sentinel_failover_mid_stream_loses_and_doubles_nothing(
    local_kafka: str,
    replicated_redis: tuple[PrivateRedis, PrivateRedis, Sentinels],
    worker_run: Callable[..., WorkerRun],
    new_topic: Callable[..., str],
    tmp_path: Path,
) -> None:
    primary, replica, sentinels = replicated_redis
    addresses = ",".join(f"{LOOPBACK}:{port}" for port in sentinels.ports)
    run = worker_run(
        f"redis://{LOOPBACK}:1/0",  # the host is ignored: the sentinels name the primary
        PARTITIONS,
        batch_size=2_000,
        redis_sentinel=addresses,
        redis_sentinel_master=MASTER,
    )

    def kill_primary() -> float:
        # The replica is cut off (frozen, its link closed) for a second, then the primary dies:
        # the writes of that second exist nowhere but in Kafka once the replica is promoted.
        os.kill(replica.pid, signal.SIGSTOP)
        link = primary.client()
        link.client_kill_filter(_type="replica")
        link.close()
        time.sleep(1.5)
        primary.kill()
        os.kill(replica.pid, signal.SIGCONT)
        down_from = time.monotonic()
        deadline = down_from + 60
        while sentinels.primary_port() != replica.port:
            assert time.monotonic() < deadline, "the sentinels did not promote the replica"
            time.sleep(0.1)
        promoted = time.monotonic() - down_from
        primary.start()  # comes back with its own AOF; the sentinels make it a replica
        return promoted

    report = run_through_fault(
        kafka=local_kafka,
        run=run,
        metrics_topic=new_topic(1),
        window=lambda: redis_client(run.env["REDIS_URL"], sentinels.config),
        fault=kill_primary,
        tmp_path=tmp_path,
    )
    old_primary = primary.client()
    try:
        wait_until(
            lambda: old_primary.info("replication")["role"] == "slave",
            30,
            "the old primary to rejoin as a replica",
            run.log,
        )
    finally:
        old_primary.close()
    refused = run.log.read_text().count("window refused batch")
    assert refused >= 1, "the failover lost the last writes, and the workers re-read them"
    print(
        f"Sentinel failover: promoted after {report.outage_s:.1f} s; {report}; "
        f"{refused} batches refused (writes lost by the failover, re-read from Kafka)"
    )


def test_writes_a_failover_loses_after_the_last_batch_are_read_again(
    local_kafka: str,
    replicated_redis: tuple[PrivateRedis, PrivateRedis, Sentinels],
    worker_run: Callable[..., WorkerRun],
    tmp_path: Path,
) -> None:
    """The stream's last batches reach only the primary, which dies once the workers are idle:
    no later batch of theirs is refused to reveal the loss, yet the window ends exact."""
    primary, replica, sentinels = replicated_redis
    addresses = ",".join(f"{LOOPBACK}:{port}" for port in sentinels.ports)
    run = worker_run(
        f"redis://{LOOPBACK}:1/0",
        PARTITIONS,
        batch_size=2_000,
        redis_sentinel=addresses,
        redis_sentinel_master=MASTER,
    )
    stream = planned_stream(60_000, users=20_000, invalid_every=40)
    replicated, lost = stream[:40_000], stream[40_000:]
    on_primary = primary.client()
    letters: dict[tuple[int, int], str] = {}
    try:
        with loginmetrics(
            "worker", "--processes", str(PROCESSES), env=run.env, log=run.log
        ) as pool:
            produced = 0
            for part in (replicated, lost):
                if part is lost:  # the replica falls behind: frozen, its link cut
                    wait_in_sync(primary, replica)
                    os.kill(replica.pid, signal.SIGSTOP)
                    on_primary.client_kill_filter(_type="replica")
                with Feeder(local_kafka, run.source, part) as feeder:
                    feeder.wait_finished(60)
                    produced += feeder.stop()
                letters |= feeder.expected_dead_letters()
                wait_applied(on_primary, run, produced)
            workers = sorted(child_pids(pool.pid))
            primary.kill()
            os.kill(replica.pid, signal.SIGCONT)
            wait_until(lambda: sentinels.primary_port() == replica.port, 60, "a promotion", run.log)
            window = redis_client(run.env["REDIS_URL"], sentinels.config)
            try:
                wait_answering(window, 30)
                totals = wait_for_total(window, run.layout, len(stream), timeout=60, log=run.log)
            finally:
                window.close()
            assert sorted(child_pids(pool.pid)) == workers, "no worker process restarted"
    finally:
        on_primary.close()
    assert pool.returncode == 0, tail(run.log)
    assert "Redis lost its last writes" in run.log.read_text()
    assert_matches(totals, truth_of(stream))
    check_dead_letters(read_topic(local_kafka, run.dlq), letters, run.source)
