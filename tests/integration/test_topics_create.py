"""`loginmetrics topics create` against the real broker: creates the three topics as asked,
reruns harmlessly, and refuses (changing nothing) when what exists differs."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import suppress

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

pytestmark = pytest.mark.integration


def topics_create(bootstrap: str, names: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    input_topic, metrics, dlq = names
    return subprocess.run(
        [sys.executable, "-m", "loginmetrics", "topics", "create", "--input-topic", input_topic,
         "--metrics-topic", metrics, "--dlq-topic", dlq, *args],
        env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )  # fmt: skip


def layout(admin: AdminClient, name: str) -> tuple[int, int, str]:
    """(partitions, replicas of each, min.insync.replicas) of topic ``name``."""
    topic = admin.list_topics(name, timeout=30).topics[name]
    replicas = {len(p.replicas) for p in topic.partitions.values()}
    assert len(replicas) == 1
    resource = ConfigResource(ResourceType.TOPIC, name)
    config = admin.describe_configs([resource])[resource].result(timeout=30)
    return len(topic.partitions), replicas.pop(), config["min.insync.replicas"].value


@pytest.fixture
def names(kafka_admin: AdminClient) -> Iterator[list[str]]:
    """Input, metrics and dead-letter topic names of this test; deleted afterwards."""
    run = uuid.uuid4().hex
    chosen = [f"test-{run}-login", f"test-{run}-metrics", f"test-{run}-dlq"]
    yield chosen
    existing = [n for n in chosen if n in kafka_admin.list_topics(timeout=30).topics]
    if existing:
        for future in kafka_admin.delete_topics(existing).values():
            with suppress(KafkaException):  # best effort: a leftover uuid topic harms nobody
                future.result(timeout=30)


def test_creates_the_topics_then_reports_them_on_a_rerun(
    kafka_bootstrap: str, kafka_admin: AdminClient, names: list[str]
) -> None:
    created = topics_create(
        kafka_bootstrap, names, "--partitions", "3", "--min-insync-replicas", "1"
    )
    assert created.returncode == 0, created.stderr
    assert created.stdout.splitlines() == [
        f"created {names[0]} (3 partitions, replication factor 1, min.insync.replicas 1)",
        f"created {names[1]} (1 partition, replication factor 1, min.insync.replicas 1)",
        f"created {names[2]} (1 partition, replication factor 1, min.insync.replicas 1)",
    ]
    assert [layout(kafka_admin, n) for n in names] == [(3, 1, "1"), (1, 1, "1"), (1, 1, "1")]

    again = topics_create(kafka_bootstrap, names, "--partitions", "3")
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines() == [
        f"{names[0]} exists (3 partitions, replication factor 1, min.insync.replicas 1)",
        f"{names[1]} exists (1 partition, replication factor 1, min.insync.replicas 1)",
        f"{names[2]} exists (1 partition, replication factor 1, min.insync.replicas 1)",
    ]


def test_a_mismatch_fails_with_what_to_do_and_changes_nothing(
    kafka_bootstrap: str, kafka_admin: AdminClient, names: list[str]
) -> None:
    # Only the input topic exists, with 2 partitions: the others must not be created either.
    first = topics_create(kafka_bootstrap, names, "--partitions", "2")
    assert first.returncode == 0, first.stderr
    kafka_admin.delete_topics(names[1:])[names[1]].result(timeout=30)
    before = layout(kafka_admin, names[0])

    refused = topics_create(kafka_bootstrap, names, "--partitions", "5")
    assert refused.returncode == 1
    assert "nothing was created or changed" in refused.stderr
    assert f"{names[0]} has 2 partitions, not 5" in refused.stderr
    assert f"--alter --topic {names[0]} --partitions 5" in refused.stderr
    assert layout(kafka_admin, names[0]) == before
    assert names[1] not in kafka_admin.list_topics(timeout=30).topics


def test_a_replication_factor_beyond_the_cluster_is_refused_up_front(
    kafka_bootstrap: str, kafka_admin: AdminClient, names: list[str]
) -> None:
    brokers = len(kafka_admin.list_topics(timeout=30).brokers)
    refused = topics_create(kafka_bootstrap, names, "--replication-factor", str(brokers + 1))
    assert refused.returncode == 2
    assert f"needs {brokers + 1} brokers; the cluster has {brokers}" in refused.stderr
    topics = kafka_admin.list_topics(timeout=30).topics
    assert not any(n in topics for n in names)
