"""``loginmetrics topics create``: the pipeline's three topics with the partitions, replication
factor and min.insync.replicas asked for. Existing topics are checked against that, never
recreated or altered: a difference is reported with what to do about it."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import click
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, ResourceType

from loginmetrics.cli import options
from loginmetrics.cli.broker import CHECK_TIMEOUT_SECONDS, BrokerWatch
from loginmetrics.runtime.clients import bootstrap_servers

MIN_INSYNC_REPLICAS = "min.insync.replicas"
# The input topic's partitions bound how many worker processes share the load.
DEFAULT_INPUT_PARTITIONS = 4
# Metric events are keyed (one partition in use whatever the count) and dead letters are few:
# the output topics get one partition, and an existing count is never a mismatch.
OUTPUT_PARTITIONS = 1
ADMIN_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """A topic as asked for. ``min_insync_replicas`` None leaves the broker's default;
    ``partitions_matter`` False accepts any partition count on an existing topic."""

    name: str
    partitions: int
    replication_factor: int
    min_insync_replicas: int | None = None
    partitions_matter: bool = True

    def config(self) -> dict[str, str]:
        if self.min_insync_replicas is None:
            return {}
        return {MIN_INSYNC_REPLICAS: str(self.min_insync_replicas)}


@dataclass(frozen=True, slots=True)
class ExistingTopic:
    """A topic as the cluster has it."""

    name: str
    partitions: int
    replication_factor: int  # of its least replicated partition
    min_insync_replicas: int | None  # None when the broker did not say


def describe(partitions: int, replication_factor: int, min_insync_replicas: int | None) -> str:
    isr = "broker default" if min_insync_replicas is None else str(min_insync_replicas)
    return (
        f"{partitions} partition{'s' if partitions != 1 else ''}, replication factor "
        f"{replication_factor}, min.insync.replicas {isr}"
    )


def pipeline_topics(
    names: Sequence[str],
    partitions: int,
    replication_factor: int,
    min_insync_replicas: int | None,
) -> list[TopicSpec]:
    """The input, metrics and dead-letter topics (in that order in ``names``) as asked for."""
    input_topic, *outputs = names
    return [
        TopicSpec(input_topic, partitions, replication_factor, min_insync_replicas),
        *(
            TopicSpec(name, OUTPUT_PARTITIONS, replication_factor, min_insync_replicas, False)
            for name in outputs
        ),
    ]


def request_problems(
    names: Sequence[str], replication_factor: int, min_insync_replicas: int | None, brokers: int
) -> list[str]:
    """Why the request cannot be met on a cluster of ``brokers``, before anything is done."""
    problems = []
    if len(set(names)) != len(names):
        problems.append(f"the input, metrics and dead-letter topics must differ: {list(names)}")
    if min_insync_replicas is not None and min_insync_replicas > replication_factor:
        problems.append(
            f"--min-insync-replicas {min_insync_replicas} exceeds --replication-factor "
            f"{replication_factor}: no write with acks=all could ever succeed"
        )
    if replication_factor > brokers:
        problems.append(
            f"--replication-factor {replication_factor} needs {replication_factor} brokers; "
            f"the cluster has {brokers}"
        )
    return problems


def differences(spec: TopicSpec, existing: ExistingTopic, bootstrap: str) -> list[str]:
    """How ``existing`` differs from ``spec``, each with what to do about it."""
    found: list[str] = []
    name, have = spec.name, existing
    if spec.partitions_matter and have.partitions < spec.partitions:
        found.append(
            f"{name} has {have.partitions} partitions, not {spec.partitions}: add partitions "
            f"with `kafka-topics.sh --bootstrap-server {bootstrap} --alter --topic {name} "
            f"--partitions {spec.partitions}` (keys then move to other partitions), "
            f"or pass --partitions {have.partitions}"
        )
    elif spec.partitions_matter and have.partitions > spec.partitions:
        found.append(
            f"{name} has {have.partitions} partitions, not {spec.partitions}: a topic cannot "
            f"lose partitions; pass --partitions {have.partitions}, or delete the topic "
            "(and its messages) and rerun"
        )
    if have.replication_factor != spec.replication_factor:
        found.append(
            f"{name} has replication factor {have.replication_factor}, not "
            f"{spec.replication_factor}: change it with a partition reassignment "
            f"(kafka-reassign-partitions.sh), or pass --replication-factor "
            f"{have.replication_factor}"
        )
    wanted_isr = spec.min_insync_replicas
    if wanted_isr is not None and have.min_insync_replicas != wanted_isr:
        found.append(
            f"{name} has min.insync.replicas {have.min_insync_replicas}, not {wanted_isr}: "
            f"set it with `kafka-configs.sh --bootstrap-server {bootstrap} --alter "
            f"--entity-type topics --entity-name {name} --add-config "
            f"{MIN_INSYNC_REPLICAS}={wanted_isr}`, or pass --min-insync-replicas "
            f"{have.min_insync_replicas}"
        )
    return found


def cluster_metadata(admin: AdminClient, watch: BrokerWatch) -> Any:
    """The cluster's metadata; a ``ClickException`` saying what to do when no broker answers."""
    deadline = time.monotonic() + CHECK_TIMEOUT_SECONDS
    while True:
        try:
            metadata = admin.list_topics(timeout=1.0)
        except KafkaException as exc:
            admin.poll(0)  # serves error_cb, which learns whether every broker is down
            if watch.all_brokers_down or time.monotonic() >= deadline:
                raise watch.unreachable(str(exc.args[0].str())) from exc
            continue
        watch.started = True
        return metadata


def existing_topics(admin: AdminClient, names: Sequence[str]) -> dict[str, ExistingTopic]:
    """Those of ``names`` the cluster has, with their min.insync.replicas."""
    topics = admin.list_topics(timeout=ADMIN_TIMEOUT_SECONDS).topics
    found: dict[str, tuple[int, int]] = {}
    for name in names:
        topic = topics.get(name)
        if topic is None or (
            topic.error is not None and topic.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART
        ):
            continue
        if topic.error is not None:
            raise click.ClickException(f"cannot inspect topic {name!r}: {topic.error.str()}")
        replicas = [len(partition.replicas) for partition in topic.partitions.values()]
        found[name] = (len(replicas), min(replicas, default=0))
    if not found:
        return {}
    resources = [ConfigResource(ResourceType.TOPIC, name) for name in found]
    isr: dict[str, int | None] = {}
    for resource, future in admin.describe_configs(resources).items():
        entry = future.result(timeout=ADMIN_TIMEOUT_SECONDS).get(MIN_INSYNC_REPLICAS)
        isr[resource.name] = None if entry is None or entry.value is None else int(entry.value)
    return {
        name: ExistingTopic(name, partitions, replication, isr.get(name))
        for name, (partitions, replication) in found.items()
    }


def wait_for_leaders(admin: AdminClient, spec: TopicSpec) -> None:
    """CreateTopics returns before every partition has a leader; producing earlier fails."""
    deadline = time.monotonic() + ADMIN_TIMEOUT_SECONDS
    while True:
        topic = admin.list_topics(spec.name, timeout=ADMIN_TIMEOUT_SECONDS).topics.get(spec.name)
        partitions = [] if topic is None or topic.error else list(topic.partitions.values())
        if len(partitions) == spec.partitions and all(p.leader >= 0 for p in partitions):
            return
        if time.monotonic() >= deadline:
            raise click.ClickException(f"{spec.name} was created but has no leader everywhere")
        time.sleep(0.1)


def create_missing(admin: AdminClient, specs: Sequence[TopicSpec]) -> list[TopicSpec]:
    """Create ``specs``; returns those another client created first (to be checked)."""
    if not specs:
        return []
    new_topics = [
        NewTopic(
            s.name,
            num_partitions=s.partitions,
            replication_factor=s.replication_factor,
            config=s.config(),
        )
        for s in specs
    ]
    by_name = {s.name: s for s in specs}
    raced = []
    futures = admin.create_topics(new_topics, request_timeout=ADMIN_TIMEOUT_SECONDS)
    for name, future in futures.items():
        spec = by_name[name]
        try:
            future.result(timeout=ADMIN_TIMEOUT_SECONDS)
        except KafkaException as exc:
            error = exc.args[0]
            if isinstance(error, KafkaError) and error.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                raced.append(spec)
                continue
            raise click.ClickException(f"cannot create {name}: {error.str()}") from exc
        wait_for_leaders(admin, spec)
        click.echo(
            f"created {name} ("
            f"{describe(spec.partitions, spec.replication_factor, spec.min_insync_replicas)})"
        )
    return raced


def check_existing(
    specs: Sequence[TopicSpec], existing: Mapping[str, ExistingTopic], bootstrap: str
) -> None:
    """Report each existing topic; fail with every difference found."""
    found: list[str] = []
    for spec in specs:
        have = existing.get(spec.name)
        if have is None:
            continue
        click.echo(
            f"{spec.name} exists ("
            f"{describe(have.partitions, have.replication_factor, have.min_insync_replicas)})"
        )
        found.extend(differences(spec, have, bootstrap))
    if found:
        raise click.ClickException(
            "existing topics differ from what was asked; nothing was created or changed:\n  - "
            + "\n  - ".join(found)
        )


@click.group()
def topics() -> None:
    """Create and check the pipeline's Kafka topics."""


@topics.command()
@options.kafka_connection
@options.input_topic
@options.metrics_topic
@options.dlq_topic
@click.option(
    "--partitions",
    envvar="LOGINMETRICS_PARTITIONS",
    show_envvar=True,
    type=click.IntRange(min=1),
    default=DEFAULT_INPUT_PARTITIONS,
    show_default=True,
    help="Partitions of the input topic: the most worker processes that share the load.",
)
@click.option(
    "--replication-factor",
    envvar="LOGINMETRICS_REPLICATION_FACTOR",
    show_envvar=True,
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Replicas of every partition (3 on a production cluster).",
)
@click.option(
    "--min-insync-replicas",
    envvar="LOGINMETRICS_MIN_INSYNC_REPLICAS",
    show_envvar=True,
    type=click.IntRange(min=1),
    default=None,
    show_default="the broker's default",
    help="Replicas that must have a write before it is acknowledged (2 with 3 replicas).",
)
def create(
    kafka: dict[str, str],
    input_topic: str,
    metrics_topic: str,
    dlq_topic: str,
    partitions: int,
    replication_factor: int,
    min_insync_replicas: int | None,
) -> None:
    """Create the input, metric and dead-letter topics; safe to rerun.

    \b
    Existing topics are checked, never recreated: a topic with other partitions, replication
    factor or (when asked) min.insync.replicas fails the command with what to do.

    \b
    Examples:
      loginmetrics topics create                      # one local broker
      loginmetrics topics create --replication-factor 3 --min-insync-replicas 2
    """
    names = [input_topic, metrics_topic, dlq_topic]
    bootstrap = bootstrap_servers(kafka)
    watch = BrokerWatch(bootstrap)
    admin = AdminClient({**kafka, **watch.client_config()})
    brokers = len(cluster_metadata(admin, watch).brokers)
    problems = request_problems(names, replication_factor, min_insync_replicas, brokers)
    if problems:
        raise click.UsageError("; ".join(problems))
    specs = pipeline_topics(names, partitions, replication_factor, min_insync_replicas)
    existing = existing_topics(admin, names)
    check_existing(specs, existing, bootstrap)
    raced = create_missing(admin, [s for s in specs if s.name not in existing])
    if raced:  # created meanwhile by someone else: check theirs as any existing topic
        check_existing(raced, existing_topics(admin, [s.name for s in raced]), bootstrap)
