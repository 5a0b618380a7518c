"""The Redis startup check: a clear warning for each setting that can lose the window's state."""

from __future__ import annotations

import logging

import fakeredis
import pytest
import redis

from loginmetrics.cli.preflight import durability_warnings, warn_unless_durable


def test_a_durable_configuration_draws_no_warning() -> None:
    assert durability_warnings({"appendonly": "yes", "maxmemory-policy": "noeviction"}) == []


def test_no_persistence_is_named_with_the_fix() -> None:
    (warning,) = durability_warnings({"appendonly": "no", "maxmemory-policy": "noeviction"})
    assert "appendonly yes" in warning
    assert "appendfsync everysec" in warning


@pytest.mark.parametrize("policy", ["allkeys-lru", "volatile-ttl", "volatile-lru"])
def test_a_policy_that_evicts_keys_is_named_with_the_fix(policy: str) -> None:
    (warning,) = durability_warnings({"appendonly": "yes", "maxmemory-policy": policy})
    assert policy in warning
    assert "noeviction" in warning


def test_a_server_without_config_is_left_alone(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    client = fakeredis.FakeRedis()

    def config_disabled(*_args: object) -> None:
        raise redis.ResponseError("unknown command 'CONFIG'")

    monkeypatch.setattr(client, "config_get", config_disabled)
    with caplog.at_level(logging.WARNING):
        warn_unless_durable(client, "managed")
    assert caplog.records == []


@pytest.mark.integration
def test_a_real_server_without_persistence_is_reported(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    client = redis.Redis.from_url(redis_url)
    before = str(client.config_get("appendonly")["appendonly"])
    client.config_set("appendonly", "no")
    try:
        with caplog.at_level(logging.WARNING):
            warn_unless_durable(client, "local")
    finally:
        client.config_set("appendonly", before)
        client.close()
    assert "persistence is off" in caplog.text
