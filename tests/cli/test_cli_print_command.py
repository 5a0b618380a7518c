"""`loginmetrics print` against a stand-in consumer: what it reads, how it stops, what it shows."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import click
import pytest
from click.testing import CliRunner
from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, TopicPartition

from loginmetrics.cli import print_command
from loginmetrics.cli.logs import LogSettings
from loginmetrics.cli.main import cli
from tests.cli.test_cli_render import METRIC_EVENT

# [low, high) of the stand-in topic's partitions 0, 1, 2: partition 1 lost its first 40 to
# retention, partition 2 is empty.
WATERMARKS = {0: (0, 100), 1: (40, 50), 2: (7, 7)}


@dataclass
class FakeMessage:
    _value: bytes | None
    _offset: int
    _key: bytes | None = b"k"

    def error(self) -> None:
        return None

    def value(self) -> bytes | None:
        return self._value

    def key(self) -> bytes | None:
        return self._key

    def topic(self) -> str:
        return "some-topic"

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset

    def timestamp(self) -> tuple[int, int]:
        return (1, 1_737_421_077_000)


@dataclass
class FakeConsumer:
    """Hands out ``batches`` one per consume(); has no subscribe() and no commit() at all."""

    config: dict[str, Any]
    batches: list[list[FakeMessage] | BaseException] = field(default_factory=list)
    assigned: list[TopicPartition] = field(default_factory=list)
    closed: bool = False

    def assign(self, partitions: list[TopicPartition]) -> None:
        self.assigned = partitions

    def consume(self, num_messages: int, timeout: float) -> list[FakeMessage]:
        if not self.batches:
            return []
        batch = self.batches.pop(0)
        if isinstance(batch, BaseException):
            raise batch
        if len(batch) > num_messages:  # like Kafka: the rest comes with the next consume()
            self.batches.insert(0, batch[num_messages:])
        return batch[:num_messages]

    def get_watermark_offsets(self, partition: TopicPartition, timeout: float) -> tuple[int, int]:
        return WATERMARKS[partition.partition]

    def close(self) -> None:
        self.closed = True


@dataclass
class FakeKafka:
    """The batches the next consumer will hand out, and the consumers the command made."""

    batches: list[list[FakeMessage] | BaseException] = field(default_factory=list)
    consumers: list[FakeConsumer] = field(default_factory=list)

    def queue(self, *batches: list[FakeMessage] | BaseException) -> None:
        self.batches.extend(batches)

    def consumer(self, config: dict[str, Any]) -> FakeConsumer:
        made = FakeConsumer(config, list(self.batches))
        self.consumers.append(made)
        return made


@pytest.fixture
def kafka(monkeypatch: pytest.MonkeyPatch) -> FakeKafka:
    fake = FakeKafka()
    monkeypatch.setattr(print_command, "Consumer", fake.consumer)
    monkeypatch.setattr(print_command, "topic_partitions", lambda *_args: [0, 1, 2])
    monkeypatch.setattr(print_command, "POLL_SECONDS", 0.01)
    # The group configures the root logger; keep pytest's capture handler in place instead.
    monkeypatch.setattr(LogSettings, "configure", lambda self: None)
    return fake


def messages(*values: bytes | None) -> list[FakeMessage]:
    return [FakeMessage(value, offset) for offset, value in enumerate(values)]


def test_reads_new_messages_of_assigned_partitions_without_a_group(
    kafka: FakeKafka,
) -> None:
    kafka.queue(messages(b'{"a": 1}'))

    result = CliRunner().invoke(cli, ["print", "--topic", "t", "--max-messages", "1"])

    assert result.exit_code == 0, result.output
    consumer = kafka.consumers[0]
    assert consumer.config["group.id"].startswith("loginmetrics-print-")
    assert consumer.config["enable.auto.commit"] is False
    assert [(tp.topic, tp.partition, tp.offset) for tp in consumer.assigned] == [
        ("t", 0, OFFSET_END),
        ("t", 1, OFFSET_END),
        ("t", 2, OFFSET_END),
    ]
    assert consumer.closed


def test_from_beginning_starts_at_the_oldest_offsets(kafka: FakeKafka) -> None:
    kafka.queue(messages(b"{}"))

    result = CliRunner().invoke(cli, ["print", "--from-beginning", "--max-messages", "1"])

    assert result.exit_code == 0, result.output
    assert {tp.offset for tp in kafka.consumers[0].assigned} == {OFFSET_BEGINNING}
    assert {tp.topic for tp in kafka.consumers[0].assigned} == {"metric-event"}


def test_piped_output_is_one_json_per_line_and_stops_at_max_messages(
    kafka: FakeKafka,
) -> None:
    kafka.queue(
        messages(b'{\n "user_id": "u1"\n}', b"not json", b"\xff\xfe"),
        messages(None, b"[1, 2]", b'{"never": "printed"}'),
    )

    result = CliRunner().invoke(cli, ["print", "--max-messages", "5"])

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert [json.loads(line) for line in lines] == [
        {"user_id": "u1"},
        {"$text": "not json"},
        {"$base64": "//4="},
        {"$tombstone": True},
        [1, 2],
    ]


def test_pretty_output_has_a_header_and_indented_json(kafka: FakeKafka) -> None:
    kafka.queue(messages(b'{"user_id": "u1", "n": 2}'))

    result = CliRunner().invoke(cli, ["print", "--pretty", "--max-messages", "1"])

    assert result.exit_code == 0, result.output
    assert "some-topic [0] @ 0" in result.stdout
    assert '{\n  "user_id": "u1",\n  "n": 2\n}' in click.unstyle(result.stdout)


def test_table_shows_metric_events_as_tables_and_anything_else_as_json(
    kafka: FakeKafka,
) -> None:
    kafka.queue(messages(json.dumps(METRIC_EVENT).encode(), b'{"other": 1}'))

    result = CliRunner().invoke(cli, ["print", "--table", "--max-messages", "2"])

    assert result.exit_code == 0, result.output
    assert "Locales (top 5 of 7)" in result.stdout
    assert "4.44 %" in result.stdout
    assert result.stdout.rstrip().endswith('{"other":1}')


def test_timeout_stops_after_a_quiet_spell(kafka: FakeKafka) -> None:
    kafka.queue(messages(b"1", b"2"))

    result = CliRunner().invoke(cli, ["print", "--timeout", "0.05"])

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["1", "2"]


def test_ctrl_c_exits_0_quietly(kafka: FakeKafka) -> None:
    kafka.queue(messages(b"1"), KeyboardInterrupt())

    result = CliRunner().invoke(cli, ["print"])

    assert result.exit_code == 0
    assert result.stdout == "1\n"
    assert "Aborted" not in result.output
    assert "Traceback" not in result.output
    assert kafka.consumers[0].closed


def test_an_unreachable_broker_is_named_with_what_to_do() -> None:
    # A closed local port: librdkafka reports every broker down at once.
    result = CliRunner().invoke(
        cli, ["print", "--bootstrap-servers", "127.0.0.1:1", "--sasl-password", "hunter2"]
    )

    assert result.exit_code == 1
    assert "Kafka at 127.0.0.1:1 not reachable" in result.output
    assert "make stack-up" in result.output
    assert "hunter2" not in result.output


@pytest.mark.parametrize(
    ("offset", "starts"),
    [
        ("-5", [95, 45, 7]),  # the last 5 of each partition
        ("-20", [80, 40, 7]),  # partition 1 holds only 10
        ("45", [45, 45, 7]),
        ("0", [0, 40, 7]),  # never before the oldest offset still held
        ("500", [100, 50, 7]),  # nor after the end
    ],
)
def test_offset_starts_at_n_or_n_before_the_end_within_what_is_held(
    kafka: FakeKafka, offset: str, starts: list[int]
) -> None:
    kafka.queue(messages(b"{}"))

    result = CliRunner().invoke(cli, ["print", "--offset", offset, "--max-messages", "1"])

    assert result.exit_code == 0, result.output
    assert [(tp.partition, tp.offset) for tp in kafka.consumers[0].assigned] == list(
        zip([0, 1, 2], starts, strict=True)
    )


def test_partition_reads_only_the_partitions_named(kafka: FakeKafka) -> None:
    kafka.queue(messages(b"{}"))

    result = CliRunner().invoke(
        cli,
        ["print", "--partition", "2", "--partition", "0", "--offset=-1", "--max-messages", "1"],
    )

    assert result.exit_code == 0, result.output
    assert [(tp.partition, tp.offset) for tp in kafka.consumers[0].assigned] == [(0, 99), (2, 7)]


def test_a_partition_the_topic_lacks_is_a_usage_error(kafka: FakeKafka) -> None:
    result = CliRunner().invoke(cli, ["print", "--topic", "t", "--partition", "3"])

    assert result.exit_code == 2
    assert "topic 't' has no partition 3 (it has 3: 0, 1, 2)" in result.output
    assert kafka.consumers[0].closed


def test_from_beginning_and_offset_together_are_refused(kafka: FakeKafka) -> None:
    result = CliRunner().invoke(cli, ["print", "--from-beginning", "--offset", "3"])

    assert result.exit_code == 2
    assert "give one" in result.output
    assert kafka.consumers == []
