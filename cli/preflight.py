"""Startup check of Redis: fail before starting anything, saying what to do; warn when the
server could lose the window's state (no persistence, or a policy that evicts keys)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from urllib.parse import urlsplit

import redis

from loginmetrics.cli.broker import stack_hint
from loginmetrics.cli.config import redact_url
from loginmetrics.cli.logs import CommandError
from loginmetrics.runtime.clients import SentinelConfig, redis_client

logger = logging.getLogger(__name__)

# Policies that never evict a key on their own (volatile-* evict keys that have a TTL, which
# every bucket key has).
SAFE_MAXMEMORY_POLICIES = ("noeviction",)


def describe_redis(url: str, sentinel: SentinelConfig | None) -> str:
    """Where the window lives, fit for a log line: password masked."""
    return redact_url(url) if sentinel is None else f"{sentinel.describe()} ({redact_url(url)})"


def require_redis(url: str, sentinel: SentinelConfig | None = None) -> None:
    """Fail with what to do unless Redis answers (the client lives only for the check)."""
    where = describe_redis(url, sentinel)
    client = redis_client(url, sentinel)
    try:
        client.ping()
        warn_unless_durable(client, where)
    except redis.AuthenticationError as exc:
        raise CommandError(
            f"Redis at {where} refused the credentials: check the password in "
            "--redis-url / REDIS_URL"
        ) from exc
    except redis.RedisError as exc:
        hosts = (
            [urlsplit(url).hostname or "localhost"]
            if sentinel is None
            else [host for host, _port in sentinel.addresses]
        )
        raise CommandError(
            f"Redis at {where} not reachable ({type(exc).__name__}) — "
            + stack_hint(hosts, "--redis-url / REDIS_URL (or --redis-sentinel) at your server")
        ) from exc
    finally:
        client.close()


def warn_unless_durable(client: redis.Redis, where: str) -> None:
    """Log a WARNING for each setting that can lose the window's state; nothing when the
    server does not let us read its configuration (managed Redis often disables CONFIG)."""
    try:
        config = {
            str(key): str(value)
            for name in ("appendonly", "maxmemory-policy")
            for key, value in client.config_get(name).items()
        }
    except redis.ResponseError:
        return
    for warning in durability_warnings(config):
        logger.warning("Redis at %s: %s", where, warning)


def durability_warnings(config: Mapping[str, str]) -> list[str]:
    """What an operator must fix in a Redis configuration for the window to survive a crash."""
    warnings = []
    if config.get("appendonly", "yes") != "yes":
        warnings.append(
            "persistence is off (appendonly no): a restart loses the applied offsets and open "
            "buckets, and the workers re-read Kafka only from their committed offsets. Set "
            "appendonly yes and appendfsync everysec"
        )
    policy = config.get("maxmemory-policy", "noeviction")
    if policy not in SAFE_MAXMEMORY_POLICIES:
        warnings.append(
            f"maxmemory-policy is {policy}: when memory runs out Redis may evict window keys "
            "(counts silently lost). Set maxmemory-policy noeviction, so a full Redis refuses "
            "writes and the workers pause instead"
        )
    return warnings
