"""The worker's "not now": an operation that must wait (Redis or the dead-letter topic away, a
seek the consumer refused) raises ``RetryLater``; a Redis call is judged here once."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import redis

from loginmetrics.runtime.redis_errors import judge

T = TypeVar("T")


class RetryLater(Exception):  # noqa: N818 - a signal within the worker, not an error
    """The work must wait; ``service`` names what it waits for, for the log."""

    def __init__(self, reason: str, service: str) -> None:
        super().__init__(reason)
        self.service = service


def call_redis(operation: Callable[[], T], what: str) -> T:
    """``operation``'s result; a Redis error that heals becomes ``RetryLater``, one that cannot
    becomes ``FatalRedisError`` (``what`` the worker was trying to do, for the message)."""
    try:
        return operation()
    except redis.RedisError as exc:
        judge(exc, what)
        raise RetryLater(f"Redis unavailable ({exc}) trying to {what}", "Redis") from exc
