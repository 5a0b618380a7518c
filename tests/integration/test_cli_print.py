"""`loginmetrics print` against the real broker: piped output, offsets, and no group left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from tests.support import produce, run_loginmetrics

pytestmark = pytest.mark.integration


def test_from_beginning_piped_prints_one_json_per_line(
    kafka_bootstrap: str, new_topic: Callable[..., str]
) -> None:
    topic = new_topic(1)
    documents = [{"n": n, "user_id": f"u{n}", "nested": {"ok": True}} for n in range(20)]
    values = [json.dumps(d, indent=2).encode() for d in documents]
    produce(kafka_bootstrap, topic, [(b"k", v) for v in [*values, b"plain text", b"\xff\xfe"]])

    run = run_loginmetrics(
        kafka_bootstrap, "print", "--topic", topic, "--from-beginning", "--max-messages", "22"
    )

    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert len(lines) == 22
    assert [json.loads(line) for line in lines] == [
        *documents,
        {"$text": "plain text"},
        {"$base64": "//4="},
    ]


def test_max_messages_stops_early_and_no_consumer_group_is_left(
    kafka_bootstrap: str, new_topic: Callable[..., str]
) -> None:
    topic = new_topic(4)
    produce(kafka_bootstrap, topic, [(f"k{n}".encode(), b"{}") for n in range(100)])

    run = run_loginmetrics(
        kafka_bootstrap, "print", "--topic", topic, "--from-beginning", "--max-messages", "7"
    )

    assert run.returncode == 0, run.stderr
    assert len(run.stdout.splitlines()) == 7
    groups = AdminClient({"bootstrap.servers": kafka_bootstrap}).list_consumer_groups().result()
    assert not [g for g in groups.valid if g.group_id.startswith("loginmetrics-print-")]


def test_without_from_beginning_only_new_messages_are_printed(
    kafka_bootstrap: str, new_topic: Callable[..., str]
) -> None:
    topic = new_topic(2)
    produce(kafka_bootstrap, topic, [(b"old", b'{"old": true}')] * 10)
    process = subprocess.Popen(
        [sys.executable, "-m", "loginmetrics", "print", "--topic", topic, "--max-messages", "1"],
        env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    try:
        # Until print has found the end offsets, a new message may still count as old: send
        # one every half second until it prints one.
        deadline = time.monotonic() + 60
        while process.poll() is None and time.monotonic() < deadline:
            producer.produce(topic, b'{"new": true}', b"new")
            producer.flush(10)
            time.sleep(0.5)
        stdout, stderr = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert process.returncode == 0, stderr
    assert stdout == '{"new":true}\n'


def test_timeout_ends_a_quiet_topic_with_exit_0(
    kafka_bootstrap: str, new_topic: Callable[..., str]
) -> None:
    started = time.monotonic()

    run = run_loginmetrics(kafka_bootstrap, "print", "--topic", new_topic(1), "--timeout", "1.5")

    assert run.returncode == 0, run.stderr
    assert run.stdout == ""
    assert 1.5 <= time.monotonic() - started < 30


def test_a_missing_topic_is_an_error_saying_how_to_create_it(kafka_bootstrap: str) -> None:
    topic = f"test-missing-{uuid.uuid4().hex}"

    run = run_loginmetrics(kafka_bootstrap, "print", "--topic", topic)

    assert run.returncode == 1
    assert f"topic '{topic}' does not exist" in run.stderr
    assert "make stack-up" in run.stderr


def test_ctrl_c_exits_0_quietly(kafka_bootstrap: str, new_topic: Callable[..., str]) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "loginmetrics", "print", "--topic", new_topic(1)],
        env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(3)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=30)

    assert process.returncode == 0, stderr
    assert stdout == ""
    assert "Traceback" not in stderr
    assert "Aborted" not in stderr


def test_partition_and_offset_from_the_end_print_that_partitions_last_messages(
    kafka_bootstrap: str, new_topic: Callable[..., str]
) -> None:
    topic = new_topic(2)
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for n in range(10):
        for partition in (0, 1):
            producer.produce(
                topic, json.dumps({"p": partition, "n": n}).encode(), partition=partition
            )
    assert producer.flush(30) == 0

    last = run_loginmetrics(
        kafka_bootstrap,
        "print",
        "--topic",
        topic,
        "--partition",
        "1",
        "--offset=-3",
        "--max-messages",
        "3",
    )
    from_offset = run_loginmetrics(
        kafka_bootstrap,
        "print",
        "--topic",
        topic,
        "--partition",
        "0",
        "--offset",
        "8",
        "--max-messages",
        "2",
    )

    assert last.returncode == 0, last.stderr
    assert [json.loads(line) for line in last.stdout.splitlines()] == [
        {"p": 1, "n": n} for n in (7, 8, 9)
    ]
    assert from_offset.returncode == 0, from_offset.stderr
    assert [json.loads(line) for line in from_offset.stdout.splitlines()] == [
        {"p": 0, "n": n} for n in (8, 9)
    ]
