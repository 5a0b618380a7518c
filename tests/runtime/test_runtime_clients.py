"""Client factories: Sentinel addresses parsed as operators write them, and a Redis client that
never retries behind our back."""

from __future__ import annotations

import logging

import pytest
from confluent_kafka import KafkaError

from loginmetrics.runtime.clients import (
    SentinelConfig,
    kafka_error_logger,
    parse_addresses,
    redis_client,
)
from loginmetrics.runtime.errors import ConfigError


def test_sentinel_addresses_accept_names_ipv4_and_bracketed_ipv6() -> None:
    assert parse_addresses("s1:26379, 10.0.0.2:26380,[::1]:26381") == (
        ("s1", 26379),
        ("10.0.0.2", 26380),
        ("::1", 26381),
    )


@pytest.mark.parametrize("text", ["", "s1", "s1:port", ":26379", " , "])
def test_a_bad_sentinel_address_says_what_is_expected(text: str) -> None:
    with pytest.raises(ConfigError, match="host:port"):
        parse_addresses(text)


def test_a_sentinel_config_prints_ipv6_in_brackets_and_no_password() -> None:
    config = SentinelConfig((("::1", 26379), ("s2", 26380)), "window", password="s3cret")
    assert config.describe() == "sentinel [::1]:26379,s2:26380 master window"
    assert "s3cret" not in repr(config.describe())


def test_the_redis_client_leaves_retrying_to_our_own_loops() -> None:
    client = redis_client("redis://127.0.0.1:1/3")
    kwargs = client.connection_pool.connection_kwargs
    assert kwargs["retry"].get_retries() == 0
    assert kwargs["socket_timeout"] == kwargs["socket_connect_timeout"] == 5.0
    assert kwargs["db"] == 3


def test_through_sentinel_the_url_gives_db_and_password_only() -> None:
    client = redis_client(
        "redis://:pw@ignored-host:1/2", SentinelConfig((("127.0.0.1", 1),), "window")
    )
    pool = client.connection_pool
    assert pool.service_name == "window"  # type: ignore[attr-defined]
    assert pool.connection_kwargs["db"] == 2
    assert pool.connection_kwargs["password"] == "pw"
    assert "host" not in pool.connection_kwargs


def test_a_lasting_kafka_problem_is_reported_once_per_interval_with_a_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    log_error = kafka_error_logger("broker:9092", clock=lambda: now[0])
    with caplog.at_level(logging.ERROR):
        for _ in range(40):  # librdkafka retrying three times a second, for 13.6 s
            log_error(KafkaError(KafkaError._AUTHENTICATION, "SASL authentication failed"))
            log_error(KafkaError(KafkaError._TRANSPORT, "Connection refused"))
            now[0] += 0.34
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 4  # each kind at 0 s and again after 10 s
    assert "refused the login" in lines[0]
    assert "KAFKA_SASL_PASSWORD" in lines[0]
    assert "not reachable" in lines[1]
    assert "(and 29 more times since the last report)" in lines[2]
