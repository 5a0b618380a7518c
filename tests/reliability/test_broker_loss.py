"""A Kafka broker of a three-node cluster is SIGKILLed mid-stream and restarted 10 s later:
first the one leading the most input partitions, then the worker group's coordinator. With
replication factor 3 and min.insync.replicas 2 nothing is lost or counted twice: the window
equals the ground truth, every dead letter is there, and metric events keep coming.

The cluster (stack/kafka.sh, KAFKA_NODES=3, private ports and state) is shared by the tests of
this module; each test has its own topics, made by `loginmetrics topics create`, and Redis."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import suppress
from pathlib import Path

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ResourceType,
)

from loginmetrics.window import WindowLayout
from tests.reliability.conftest import (
    LOOPBACK,
    ROOT,
    STACK_TIMEOUT_S,
    PrivateRedis,
    WorkerRun,
    free_port_block,
)
from tests.reliability.test_redis_faults import run_through_fault
from tests.support import MetricEvents, pipeline_env

pytestmark = [pytest.mark.integration, pytest.mark.reliability, pytest.mark.timeout(240)]

NODES = 3
PARTITIONS = 4
DOWN_S = 10.0  # how long the killed broker stays down
ISR_TIMEOUT_S = 60.0


class PrivateCluster:
    """Three KRaft nodes (ids 1..3) of this module alone: node i on ``port + i - 1``."""

    def __init__(self, state: Path) -> None:
        # Broker ports, then controller ports (kafka.sh's default: right after the brokers').
        self.port = free_port_block(2 * NODES)
        self.bootstrap = ",".join(f"{LOOPBACK}:{self.port + i}" for i in range(NODES))
        self._state = state
        self._env = {
            "KAFKA_NODES": str(NODES),
            "KAFKA_PORT": str(self.port),
            "KAFKA_STATE_DIR": str(state),
        }

    def stack(self, *args: str) -> None:
        result = subprocess.run(
            ["bash", str(ROOT / "stack" / "kafka.sh"), *args],
            env={**os.environ, **self._env},
            capture_output=True,
            text=True,
            timeout=STACK_TIMEOUT_S * 2,
            check=False,
        )
        assert result.returncode == 0, f"kafka.sh {' '.join(args)}:\n{result.stderr[-3000:]}"

    def pid(self, node: int) -> int:
        return int((self._state / f"node-{node}" / "kafka.pid").read_text())

    def kill(self, node: int) -> None:
        """SIGKILL, as a crashed machine: no controlled shutdown, no leadership handed over."""
        pid = self.pid(node)
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while Path(f"/proc/{pid}").exists():
            assert time.monotonic() < deadline, f"node {node} did not die"
            time.sleep(0.05)

    def admin(self) -> AdminClient:
        return AdminClient({"bootstrap.servers": self.bootstrap})

    def leaders(self, topic: str) -> Counter[int]:
        """How many partitions of ``topic`` each node leads."""
        partitions = self.admin().list_topics(topic, timeout=30).topics[topic].partitions
        return Counter(p.leader for p in partitions.values())

    def coordinator(self, group: str) -> int:
        """The node coordinating consumer group ``group``."""
        admin = self.admin()  # kept alive until the answer: its futures die with it
        future = admin.describe_consumer_groups([group])[group]
        return int(future.result(timeout=30).coordinator.id)

    def wait_in_sync(self, topic: str) -> None:
        """Until every partition of ``topic`` has all its replicas in sync again."""
        admin = self.admin()
        deadline = time.monotonic() + ISR_TIMEOUT_S
        while True:
            partitions = admin.list_topics(topic, timeout=30).topics[topic].partitions.values()
            if all(len(p.isrs) == NODES for p in partitions):
                return
            assert time.monotonic() < deadline, f"{topic}: replicas not back in sync"
            time.sleep(0.5)

    def rss_mib(self) -> list[float]:
        """Resident memory of each node's JVM."""
        sizes = []
        for node in range(1, NODES + 1):
            status = Path(f"/proc/{self.pid(node)}/status").read_text()
            kib = next(int(line.split()[1]) for line in status.splitlines() if line[:6] == "VmRSS:")
            sizes.append(kib / 1024)
        return sizes


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateCluster]:
    nodes = PrivateCluster(tmp_path_factory.mktemp("kafka-cluster"))
    nodes.stack("start")
    try:
        yield nodes
    finally:
        nodes.stack("stop")


@pytest.fixture
def cluster_run(
    cluster: PrivateCluster,
    private_redis: PrivateRedis,
    redis_prefix: str,
    unique_group_id: str,
    tmp_path: Path,
) -> Iterator[tuple[WorkerRun, str]]:
    """The test's input, metric and dead-letter topics, made by `loginmetrics topics create`
    with 3 replicas and min.insync.replicas 2, and a worker pool's run on them."""
    run = uuid.uuid4().hex
    source, metrics, dlq = f"test-{run}-login", f"test-{run}-metrics", f"test-{run}-dlq"
    created = subprocess.run(
        [sys.executable, "-m", "loginmetrics", "topics", "create", "--input-topic", source,
         "--metrics-topic", metrics, "--dlq-topic", dlq, "--partitions", str(PARTITIONS),
         "--replication-factor", "3", "--min-insync-replicas", "2"],
        env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": cluster.bootstrap},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    assert created.stdout.count("replication factor 3, min.insync.replicas 2") == 3
    # Metric events stamped when the broker appends them, not when the aggregator made them:
    # a gap between two then includes any wait for a new leader of the metric topic.
    admin = cluster.admin()
    append_time = ConfigEntry(
        "message.timestamp.type", "LogAppendTime", incremental_operation=AlterConfigOpType.SET
    )
    resource = ConfigResource(ResourceType.TOPIC, metrics, incremental_configs=[append_time])
    admin.incremental_alter_configs([resource])[resource].result(timeout=30)
    env = pipeline_env(
        cluster.bootstrap,
        private_redis.url,
        redis_prefix,
        input_topic=source,
        dlq_topic=dlq,
        group_id=unique_group_id,
        batch_size=2_000,
    )
    yield (
        WorkerRun(source, dlq, WindowLayout(prefix=redis_prefix), env, tmp_path / "worker.log"),
        metrics,
    )
    for future in admin.delete_topics([source, metrics, dlq]).values():
        with suppress(KafkaException):  # best effort: the cluster goes at the module's end
            future.result(timeout=30)


class BrokerKill:
    """The fault: SIGKILL the node ``choose`` names, restart it DOWN_S later; returns how long
    it was gone until it answered again. Remembers which node, whether it led the metric topic,
    and when (epoch ms) it was killed and back."""

    def __init__(self, cluster: PrivateCluster, choose: Callable[[], int], metrics: str) -> None:
        self._cluster = cluster
        self._choose = choose
        self._metrics = metrics
        self.node = 0
        self.led_metrics = False
        self.killed_ms = self.back_ms = 0.0

    def __call__(self) -> float:
        self.node = self._choose()
        self.led_metrics = self._cluster.leaders(self._metrics)[self.node] > 0
        self._cluster.kill(self.node)
        self.killed_ms = time.time() * 1000
        down_from = time.monotonic()
        time.sleep(DOWN_S)
        self._cluster.stack("start", "--node", str(self.node))
        self.back_ms = time.time() * 1000
        return time.monotonic() - down_from

    def assert_events_while_down(self, bootstrap: str) -> int:
        """Metric events were appended while the node was down: how many."""
        events = MetricEvents(bootstrap, self._metrics)
        try:
            events.wait_for(
                lambda: any(at > self.back_ms for _end, at in events.events),
                30,
                "a metric event after the restart",
            )
        finally:
            events.close()
        during = sum(1 for _end, at in events.events if self.killed_ms < at < self.back_ms)
        assert during > 0, "metric events stopped while the node was down"
        return during


def survive(
    what: str,
    choose: Callable[[], int],
    cluster: PrivateCluster,
    cluster_run: tuple[WorkerRun, str],
    private_redis: PrivateRedis,
    tmp_path: Path,
) -> None:
    """The stream through 2 workers and the aggregator while ``choose``'s node is killed and
    restarted: exact totals and dead letters (``run_through_fault``), events while it was
    down, each window end once, and every replica back in sync afterwards."""
    run, metrics = cluster_run
    kill = BrokerKill(cluster, choose, metrics)
    report = run_through_fault(
        kafka=cluster.bootstrap,
        run=run,
        metrics_topic=metrics,
        window=private_redis.client,
        fault=kill,
        tmp_path=tmp_path,
        fenced_restarts=True,
    )
    assert report.repeated_window_ends == 0, "each window end is published once"
    during = kill.assert_events_while_down(cluster.bootstrap)
    cluster.wait_in_sync(run.source)
    rss = cluster.rss_mib()
    led = "" if kill.led_metrics else "not "
    print(
        f"{what} (node {kill.node}, {led}the metric topic's leader) SIGKILLed, back after "
        f"{report.outage_s:.1f} s: {report.produced} messages ({report.invalid} unusable), "
        f"{during} metric events while it was down, longest gap between two "
        f"{report.longest_event_gap_s:.1f} s, {report.dead_letter_duplicates} duplicate dead "
        f"letters; cluster RSS {' + '.join(f'{m:.0f}' for m in rss)} = {sum(rss):.0f} MiB"
    )


def test_losing_the_leader_of_the_most_input_partitions_loses_and_doubles_nothing(
    cluster: PrivateCluster,
    cluster_run: tuple[WorkerRun, str],
    private_redis: PrivateRedis,
    tmp_path: Path,
) -> None:
    source = cluster_run[0].source
    survive(
        "the leader of the most input partitions",
        lambda: cluster.leaders(source).most_common(1)[0][0],
        cluster,
        cluster_run,
        private_redis,
        tmp_path,
    )


def test_losing_the_group_coordinator_loses_and_doubles_nothing(
    cluster: PrivateCluster,
    cluster_run: tuple[WorkerRun, str],
    private_redis: PrivateRedis,
    tmp_path: Path,
) -> None:
    group = cluster_run[0].env["LOGINMETRICS_GROUP_ID"]
    survive(
        "the worker group's coordinator",
        lambda: cluster.coordinator(group),
        cluster,
        cluster_run,
        private_redis,
        tmp_path,
    )
