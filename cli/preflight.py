"""Startup check of Redis: fail before starting anything, saying what to do."""

from __future__ import annotations

import click
import redis

from loginmetrics.cli.broker import STACK_HINT
from loginmetrics.cli.config import redact_url


def require_redis(url: str) -> None:
    """Fail with what to do unless Redis answers (the client lives only for the check)."""
    client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=5)
    try:
        client.ping()
    except redis.AuthenticationError as exc:
        raise click.ClickException(
            f"Redis at {redact_url(url)} refused the credentials: check the password in "
            "--redis-url / REDIS_URL"
        ) from exc
    except redis.RedisError as exc:
        raise click.ClickException(
            f"Redis at {redact_url(url)} not reachable ({type(exc).__name__}) — {STACK_HINT}, "
            "or point --redis-url / REDIS_URL at your server"
        ) from exc
    finally:
        client.close()
