"""Redis errors sorted once: "not now" (pause, back off, resume by itself) or "will not heal"
(one clear ERROR, then the process exits with ``EXIT_FATAL`` and is not restarted)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum

import redis
from redis.exceptions import (
    AuthenticationError,
    AuthorizationError,
    ClusterDownError,
    InvalidResponse,
    NoPermissionError,
    NoScriptError,
    OutOfMemoryError,
    ReadOnlyError,
    ResponseError,
    TryAgainError,
)

from loginmetrics.runtime.errors import LoginMetricsError
from loginmetrics.runtime.signals import EXIT_FATAL

logger = logging.getLogger(__name__)


class RedisFault(Enum):
    NOT_NOW = "not now"
    WILL_NOT_HEAL = "will not heal"


# Error prefixes of a server that is loading, busy, read-only (a replica, or a primary that lost
# its link during a failover), full, or a cluster in flux: all of them pass by themselves.
NOT_NOW_CODES = frozenset(
    {"LOADING", "BUSY", "READONLY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN", "OOM", "NOREPLICAS"}
)
_NOT_NOW_TYPES = (
    # Connection loss, timeouts, LOADING (BusyLoadingError is a ConnectionError) and a
    # garbled reply (redis-py drops that connection and the next command opens a new one).
    redis.ConnectionError,
    redis.TimeoutError,
    InvalidResponse,
    ReadOnlyError,
    OutOfMemoryError,
    TryAgainError,
    ClusterDownError,  # MASTERDOWN too (MasterDownError is one)
    # redis-py's Script reloads a script the server forgot (a restart, SCRIPT FLUSH) by itself;
    # one that still reaches us raced a flush and will load on the next attempt.
    NoScriptError,
)
_AUTH_TYPES = (AuthenticationError, AuthorizationError, NoPermissionError)


def error_code(exc: redis.RedisError) -> str:
    """The server's error prefix (``OOM``, ``NOPERM``, ``ERR`` …), '' for a client-side error.

    redis-py strips prefixes it knows into ``status_code`` and keeps the others in the text."""
    if exc.status_code:
        return exc.status_code
    if isinstance(exc, ResponseError) and exc.args:
        word = str(exc.args[0]).split(" ", 1)[0]
        return word if word.isupper() else ""
    return ""


def classify(exc: redis.RedisError) -> RedisFault:
    # Authentication errors are ConnectionErrors in redis-py: test them first.
    if isinstance(exc, _AUTH_TYPES):
        return RedisFault.WILL_NOT_HEAL
    if isinstance(exc, _NOT_NOW_TYPES) or error_code(exc) in NOT_NOW_CODES:
        return RedisFault.NOT_NOW
    # Anything else the server refused (a script error, WRONGTYPE, a disabled command) is
    # refused again on every retry.
    return RedisFault.WILL_NOT_HEAL


class FatalRedisError(LoginMetricsError):
    """Redis refused in a way no retry can fix; the message says what to do."""


def advice(exc: redis.RedisError, doing: str) -> str:
    """One line for the operator: what Redis said while this process tried ``doing``, and the
    fix. Redis error texts never carry the password."""
    code = error_code(exc) or type(exc).__name__
    said = f"Redis refused to {doing} ({code}: {exc})"
    if isinstance(exc, AuthenticationError | AuthorizationError):
        fix = "check the user name and password in --redis-url (REDIS_URL), then restart"
    elif isinstance(exc, NoPermissionError):
        fix = (
            "the Redis user lacks a permission loginmetrics needs (EVALSHA/EVAL, HMGET, TIME and "
            "the key commands on its prefix); grant it with ACL SETUSER, then restart"
        )
    elif "script" in str(exc).lower():
        fix = (
            "a loginmetrics Lua script failed inside Redis; a key under the --redis-prefix may "
            "hold a foreign value (check with TYPE), else report it as a bug with this line"
        )
    else:
        fix = "retrying cannot help; fix the Redis server or its configuration, then restart"
    return f"{said}; {fix}. Exiting with code {EXIT_FATAL} (not restarted)."


def judge(exc: redis.RedisError, doing: str) -> None:
    """The one rule for a Redis error met while ``doing`` something: counted in
    ``loginmetrics_redis_errors_total``; returns when it means "not now" (the caller pauses and
    retries), raises ``FatalRedisError`` from it when it will not heal."""
    # Imported here: runtime.metrics labels its Redis errors with this module's codes.
    from loginmetrics.runtime.metrics import common_metrics

    common_metrics().redis_error(exc)
    if classify(exc) is RedisFault.WILL_NOT_HEAL:
        raise FatalRedisError(advice(exc, doing)) from exc


@contextmanager
def exit_when_fatal() -> Iterator[None]:
    """Around a process's main loop: ``FatalRedisError`` becomes one ERROR line and
    ``SystemExit(EXIT_FATAL)``, which tells the supervisor not to restart this process."""
    try:
        yield
    except FatalRedisError as exc:
        logger.error("%s", exc)  # one line, no traceback: it would hide what to do
        raise SystemExit(EXIT_FATAL) from None
