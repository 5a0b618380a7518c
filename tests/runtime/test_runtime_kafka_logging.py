"""librdkafka's reports through Python logging: "not reachable" only when no address of the
broker answers (``localhost`` resolving to ::1 first, with a broker on 127.0.0.1 alone, is no
error), each kind once per interval, and librdkafka's own lines at a level we chose."""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from confluent_kafka import KafkaError

from loginmetrics.runtime.kafka_logging import (
    KafkaReach,
    LibrdkafkaLogger,
    kafka_error_logger,
    on_loopback,
    split_servers,
)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def ipv4_only_port() -> Iterator[socket.socket]:
    """A port that accepts on 127.0.0.1 and refuses on ::1, as the local broker did."""
    for _ in range(20):
        listener = socket.create_server(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        try:
            with socket.create_connection(("::1", port), timeout=0.5):
                pass  # something answers on ::1 at that port: take another
        except OSError:
            yield listener
            listener.close()
            return
        listener.close()
    pytest.fail("no port free on ::1 beside a 127.0.0.1 listener")


def localhost_ipv6_first(host: str, port: int) -> Sequence[tuple[int, Any]]:
    """Name resolution as on a stock Debian 12 (``::1 localhost`` in /etc/hosts), whatever
    this machine's hosts file says."""
    assert host == "localhost"
    return [
        (socket.AF_INET6, ("::1", port, 0, 0)),
        (socket.AF_INET, ("127.0.0.1", port)),
    ]


def nowhere(host: str, port: int) -> Sequence[tuple[int, Any]]:
    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


def librdkafka_refusals(port: int) -> list[KafkaError]:
    """What librdkafka 2.x reports when localhost's first address (::1) refuses: verbatim."""
    broker = f"localhost:{port}/bootstrap"
    return [
        KafkaError(
            KafkaError._TRANSPORT,
            f"{broker}: Connect to ipv6#[::1]:{port} failed: Connection refused "
            "(after 0ms in state CONNECT)",
        ),
        KafkaError(KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down"),
    ]


def test_localhost_refusing_on_ipv6_with_the_broker_on_ipv4_is_no_error(
    ipv4_only_port: socket.socket, caplog: pytest.LogCaptureFixture
) -> None:
    port = ipv4_only_port.getsockname()[1]
    clock = Clock()
    bootstrap = f"localhost:{port}"
    log_error = kafka_error_logger(
        bootstrap, clock, KafkaReach(bootstrap, localhost_ipv6_first, clock)
    )

    with caplog.at_level(logging.DEBUG):
        for _ in range(30):  # librdkafka alternating between the two addresses for 15 s
            for error in librdkafka_refusals(port):
                log_error(error)
            clock.now += 0.5

    assert [r for r in caplog.records if r.levelno >= logging.INFO] == []
    assert "another address answers" in caplog.records[0].getMessage()


def test_a_broker_that_answers_on_no_address_is_not_reachable_once_per_interval(
    ipv4_only_port: socket.socket, caplog: pytest.LogCaptureFixture
) -> None:
    port = ipv4_only_port.getsockname()[1]
    ipv4_only_port.close()  # the broker stops: both addresses refuse now
    clock = Clock()
    bootstrap = f"localhost:{port}"
    log_error = kafka_error_logger(
        bootstrap, clock, KafkaReach(bootstrap, localhost_ipv6_first, clock)
    )

    with caplog.at_level(logging.INFO):
        for _ in range(30):
            for error in librdkafka_refusals(port):
                log_error(error)
            clock.now += 0.5

    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 2, errors  # at 0 s and at 10 s
    assert errors[0].startswith(f"Kafka at {bootstrap} not reachable (")
    assert "make stack-up" in errors[0]
    assert "(and 39 more times since the last report)" in errors[1]


def test_a_broker_of_the_cluster_is_judged_on_its_own_address(
    ipv4_only_port: socket.socket, caplog: pytest.LogCaptureFixture
) -> None:
    # The bootstrap server answers; broker 2, which the cluster told us of, does not.
    answering = ipv4_only_port.getsockname()[1]
    with socket.create_server(("127.0.0.1", 0)) as closed:
        down = closed.getsockname()[1]
    log_error = kafka_error_logger(f"127.0.0.1:{answering}", Clock())

    with caplog.at_level(logging.INFO):
        log_error(
            KafkaError(
                KafkaError._TRANSPORT,
                f"127.0.0.1:{down}/2: Connect to ipv4#127.0.0.1:{down} failed: Connection "
                "refused (after 0ms in state CONNECT)",
            )
        )

    assert [r.levelname for r in caplog.records] == ["ERROR"]
    assert f"127.0.0.1:{down}/2" in caplog.records[0].getMessage()


def test_a_dropped_connection_to_a_broker_that_answers_is_a_warning(
    ipv4_only_port: socket.socket, caplog: pytest.LogCaptureFixture
) -> None:
    port = ipv4_only_port.getsockname()[1]
    log_error = kafka_error_logger(f"127.0.0.1:{port}", Clock())

    with caplog.at_level(logging.INFO):
        log_error(
            KafkaError(
                KafkaError._TRANSPORT,
                f"127.0.0.1:{port}/1: Disconnected (after 600012ms in state UP)",
            )
        )

    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert "reconnecting" in caplog.records[0].getMessage()


def test_a_remote_broker_gets_no_local_stack_hint(caplog: pytest.LogCaptureFixture) -> None:
    bootstrap = "kafka-1.example.internal:9092"
    log_error = kafka_error_logger(bootstrap, Clock(), KafkaReach(bootstrap, nowhere))

    with caplog.at_level(logging.ERROR):
        log_error(KafkaError(KafkaError._RESOLVE, "Failed to resolve 'kafka-1.example.internal'"))

    assert len(caplog.records) == 1
    assert "not reachable" in caplog.records[0].getMessage()
    assert "make stack-up" not in caplog.records[0].getMessage()


def test_other_kafka_problems_are_reported_once_per_interval_with_a_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    log_error = kafka_error_logger("broker:9092", clock, KafkaReach("broker:9092", nowhere))
    with caplog.at_level(logging.ERROR):
        for _ in range(40):  # librdkafka retrying three times a second, for 13.6 s
            log_error(KafkaError(KafkaError._AUTHENTICATION, "SASL authentication failed"))
            log_error(KafkaError(KafkaError._TRANSPORT, "Connection refused"))
            clock.now += 0.34
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 4  # each kind at 0 s and again after 10 s
    assert "refused the login" in lines[0]
    assert "KAFKA_SASL_PASSWORD" in lines[0]
    assert "not reachable" in lines[1]
    assert "(and 29 more times since the last report)" in lines[2]


def test_librdkafkas_own_lines_are_logged_once_per_kind_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    librdkafka = LibrdkafkaLogger(clock)
    fail = "localhost:9092/bootstrap: Connect to ipv6#[::1]:9092 failed: Connection refused"
    with caplog.at_level(logging.DEBUG, logger="librdkafka"):
        for _ in range(25):  # 12.5 s of one client reconnecting twice a second
            librdkafka.log(logging.ERROR, "%s [%s] %s", "FAIL", "rdkafka#producer-1", fail)
            librdkafka.log(logging.WARNING, "%s [%s] %s", "MAXPOLL", "rdkafka#consumer-2", "late")
            clock.now += 0.5

    seen = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert seen == [
        # error_cb reports failed connections, judged: librdkafka's own copy is DEBUG.
        ("DEBUG", f"FAIL [rdkafka#producer-1] {fail}"),
        ("WARNING", "MAXPOLL [rdkafka#consumer-2] late"),
        ("DEBUG", f"FAIL [rdkafka#producer-1] {fail} (and 19 more times since the last report)"),
        ("WARNING", "MAXPOLL [rdkafka#consumer-2] late (and 19 more times since the last report)"),
    ]


def test_bootstrap_servers_and_their_hosts() -> None:
    assert split_servers("localhost:9092, [::1]:9093,bad") == [("localhost", 9092), ("::1", 9093)]
    assert on_loopback(["localhost", "127.0.0.2", "::1"])
    assert not on_loopback(["localhost", "kafka"])
    assert not on_loopback([])


# Every kind of client, made as the worker and the aggregator make theirs, with no broker at the
# address; librdkafka writes to fd 2 itself unless its lines go through Python logging.
CLIENTS_WITH_THE_BROKER_DOWN = """
import sys, time
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient
from loginmetrics.cli.logs import LogSettings
from loginmetrics.runtime.clients import kafka_client_config

LogSettings(level="DEBUG", format="json").configure()
kafka = {"bootstrap.servers": sys.argv[1]}
producer = Producer(kafka_client_config(kafka, kafka, "producer"))
consumer = Consumer(kafka_client_config({**kafka, "group.id": "g"}, kafka, "consumer"))
admin = AdminClient(kafka_client_config(kafka, kafka, "admin"))
consumer.subscribe(["user-login"])
producer.produce("user-login", b"x")
deadline = time.monotonic() + float(sys.argv[2])
while time.monotonic() < deadline:
    consumer.poll(0.2)
    producer.poll(0.1)
    admin.poll(0.1)
"""


def test_with_the_broker_down_every_client_logs_json_lines_only() -> None:
    with socket.create_server(("127.0.0.1", 0)) as closed:
        port = closed.getsockname()[1]  # nothing listens there once closed
    result = subprocess.run(
        [sys.executable, "-c", CLIENTS_WITH_THE_BROKER_DOWN, f"127.0.0.1:{port}", "4"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stderr.splitlines()
    records = [json.loads(line) for line in lines]  # fails on any line that is not JSON
    assert result.stdout == ""
    unreachable = [r for r in records if "not reachable" in r["message"]]
    librdkafka = [r for r in records if r["logger"] == "librdkafka"]
    assert unreachable
    assert all(r["level"] == "ERROR" for r in unreachable)
    assert any(f"127.0.0.1:{port}" in r["message"] for r in librdkafka)
    # Each client's lines of one kind at most once per interval (the first 4 s: once each).
    kinds = [(r["message"].split(" ", 2)[:2]) for r in librdkafka]
    assert len(kinds) == len({tuple(kind) for kind in kinds}), kinds
