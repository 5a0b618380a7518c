"""Client factories: Sentinel addresses parsed as operators write them, and a Redis client that
never retries behind our back."""

from __future__ import annotations

import pytest

from loginmetrics.runtime.clients import (
    SentinelConfig,
    kafka_client_config,
    parse_addresses,
    redis_client,
)
from loginmetrics.runtime.errors import ConfigError
from loginmetrics.runtime.kafka_logging import LibrdkafkaLogger


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


def test_every_kafka_client_logs_through_python_logging() -> None:
    config = kafka_client_config({"acks": "all"}, {"bootstrap.servers": "b:9092"}, "worker-1")
    assert config["client.id"] == "worker-1"
    assert config["acks"] == "all"
    assert callable(config["error_cb"])
    assert isinstance(config["logger"], LibrdkafkaLogger)
