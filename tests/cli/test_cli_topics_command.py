"""`loginmetrics topics create`'s decisions without a broker: what is asked for, what cannot be
met, and how an existing topic differs from the request."""

from __future__ import annotations

import click
import pytest

from loginmetrics.cli.topics_command import (
    ExistingTopic,
    TopicSpec,
    check_existing,
    differences,
    pipeline_topics,
    request_problems,
)

NAMES = ["user-login", "metric-event", "dead-letter-queue"]
BOOTSTRAP = "kafka-1:9092"


def test_the_input_topic_gets_the_partitions_and_the_outputs_one() -> None:
    specs = pipeline_topics(NAMES, 8, 3, 2)
    assert [(s.name, s.partitions, s.replication_factor) for s in specs] == [
        ("user-login", 8, 3),
        ("metric-event", 1, 3),
        ("dead-letter-queue", 1, 3),
    ]
    assert all(s.config() == {"min.insync.replicas": "2"} for s in specs)


def test_no_min_insync_replicas_leaves_the_broker_default() -> None:
    assert all(s.config() == {} for s in pipeline_topics(NAMES, 4, 1, None))


def test_a_matching_topic_has_no_difference() -> None:
    spec = TopicSpec("user-login", 4, 3, 2)
    assert differences(spec, ExistingTopic("user-login", 4, 3, 2), BOOTSTRAP) == []


def test_min_insync_replicas_is_compared_only_when_asked() -> None:
    spec = TopicSpec("user-login", 4, 3, None)
    assert differences(spec, ExistingTopic("user-login", 4, 3, 1), BOOTSTRAP) == []


def test_fewer_partitions_than_asked_says_how_to_add_them() -> None:
    [found] = differences(
        TopicSpec("user-login", 8, 1), ExistingTopic("user-login", 4, 1, 1), BOOTSTRAP
    )
    assert "user-login has 4 partitions, not 8" in found
    assert "kafka-topics.sh --bootstrap-server kafka-1:9092 --alter --topic user-login" in found
    assert "--partitions 8" in found
    assert "or pass --partitions 4" in found


def test_more_partitions_than_asked_cannot_be_undone() -> None:
    [found] = differences(
        TopicSpec("user-login", 4, 1), ExistingTopic("user-login", 6, 1, 1), BOOTSTRAP
    )
    assert "user-login has 6 partitions, not 4" in found
    assert "cannot lose partitions" in found
    assert "pass --partitions 6" in found


def test_an_output_topic_may_have_any_partition_count() -> None:
    metrics = pipeline_topics(NAMES, 4, 1, None)[1]
    assert differences(metrics, ExistingTopic("metric-event", 3, 1, 1), BOOTSTRAP) == []


def test_replication_and_min_insync_replicas_differences_are_each_reported() -> None:
    found = differences(
        TopicSpec("metric-event", 1, 3, 2), ExistingTopic("metric-event", 1, 1, 1), BOOTSTRAP
    )
    assert len(found) == 2
    assert "metric-event has replication factor 1, not 3" in found[0]
    assert "kafka-reassign-partitions.sh" in found[0]
    assert "metric-event has min.insync.replicas 1, not 2" in found[1]
    assert "--entity-name metric-event --add-config min.insync.replicas=2" in found[1]


@pytest.mark.parametrize(
    ("names", "replication", "min_isr", "brokers", "expected"),
    [
        (NAMES, 3, 2, 3, []),
        (NAMES, 1, None, 1, []),
        (NAMES, 3, 2, 1, ["--replication-factor 3 needs 3 brokers; the cluster has 1"]),
        (NAMES, 2, 3, 3, ["--min-insync-replicas 3 exceeds --replication-factor 2"]),
        (["a", "b", "a"], 1, None, 1, ["the input, metrics and dead-letter topics must differ"]),
    ],
)
def test_requests_that_cannot_be_met_are_refused_before_anything_is_done(
    names: list[str], replication: int, min_isr: int | None, brokers: int, expected: list[str]
) -> None:
    problems = request_problems(names, replication, min_isr, brokers)
    assert len(problems) == len(expected)
    for problem, start in zip(problems, expected, strict=True):
        assert problem.startswith(start)


def test_every_difference_of_every_topic_fails_the_check_together(
    capsys: pytest.CaptureFixture[str],
) -> None:
    specs = pipeline_topics(NAMES, 4, 3, 2)
    existing = {
        "user-login": ExistingTopic("user-login", 2, 3, 2),
        "dead-letter-queue": ExistingTopic("dead-letter-queue", 1, 1, 1),
    }
    with pytest.raises(click.ClickException) as raised:
        check_existing(specs, existing, BOOTSTRAP)
    message = raised.value.message
    assert message.startswith("existing topics differ from what was asked; nothing was created")
    assert message.count("\n  - ") == 3
    assert "user-login has 2 partitions, not 4" in message
    assert "dead-letter-queue has replication factor 1, not 3" in message
    assert "dead-letter-queue has min.insync.replicas 1, not 2" in message
    # Each existing topic is reported as found; metric-event (missing) is not mentioned.
    assert capsys.readouterr().out.splitlines() == [
        "user-login exists (2 partitions, replication factor 3, min.insync.replicas 2)",
        "dead-letter-queue exists (1 partition, replication factor 1, min.insync.replicas 1)",
    ]


def test_matching_topics_pass_the_check(capsys: pytest.CaptureFixture[str]) -> None:
    specs = pipeline_topics(NAMES, 4, 3, 2)
    existing = {s.name: ExistingTopic(s.name, s.partitions, 3, 2) for s in specs}
    check_existing(specs, existing, BOOTSTRAP)
    assert len(capsys.readouterr().out.splitlines()) == 3
