"""Redis errors sorted into "not now" and "will not heal", from the error replies a server
sends, turned into exceptions by redis-py's own reply parser."""

from __future__ import annotations

import logging

import pytest
import redis
from redis._parsers.base import BaseParser

from loginmetrics.runtime.redis_errors import (
    FatalRedisError,
    RedisFault,
    classify,
    exit_when_fatal,
    judge,
)
from loginmetrics.runtime.signals import EXIT_FATAL


def server_error(reply: str) -> redis.RedisError:
    error = BaseParser.parse_error(reply)  # type: ignore[no-untyped-call]
    assert isinstance(error, redis.RedisError)
    return error


NOT_NOW_REPLIES = [
    "LOADING Redis is loading the dataset in memory",
    "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.",
    "READONLY You can't write against a read only replica.",
    "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
    "TRYAGAIN Multiple keys request during rehashing of slot",
    "CLUSTERDOWN The cluster is down",
    "OOM command not allowed when used memory > 'maxmemory'.",
    "NOREPLICAS Not enough good replicas to write.",
    "NOSCRIPT No matching script. Please use EVAL.",
    "ERR max number of clients reached",
]
WILL_NOT_HEAL_REPLIES = [
    "NOPERM User worker has no permissions to run the 'evalsha' command",
    "WRONGPASS invalid username-password pair or user is disabled.",
    "NOAUTH Authentication required.",
    "ERR Error running script (call to f_0a1b): @user_script:12: user_script:12: "
    "Attempt to compare nil with number",
    "ERR user_script:1: Script attempted to access nonexistent global variable 'x'",
    "WRONGTYPE Operation against a key holding the wrong kind of value",
    "ERR unknown command 'EVALSHA'",
]


@pytest.mark.parametrize("reply", NOT_NOW_REPLIES)
def test_a_passing_condition_is_not_now(reply: str) -> None:
    error = server_error(reply)
    assert classify(error) is RedisFault.NOT_NOW
    judge(error, "apply a batch")  # returns: the caller retries


@pytest.mark.parametrize(
    "error",
    [
        redis.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused."),
        redis.TimeoutError("Timeout reading from socket"),
        redis.exceptions.InvalidResponse("Protocol Error: b'x'"),
    ],
)
def test_connection_trouble_is_not_now(error: redis.RedisError) -> None:
    assert classify(error) is RedisFault.NOT_NOW


@pytest.mark.parametrize("reply", WILL_NOT_HEAL_REPLIES)
def test_a_refusal_that_will_not_heal_raises_with_advice(reply: str) -> None:
    error = server_error(reply)
    assert classify(error) is RedisFault.WILL_NOT_HEAL
    with pytest.raises(FatalRedisError) as raised:
        judge(error, "apply a batch")
    assert raised.value.__cause__ is error
    assert "Redis refused to apply a batch" in str(raised.value)
    assert f"Exiting with code {EXIT_FATAL}" in str(raised.value)


@pytest.mark.parametrize(
    ("reply", "advice"),
    [
        ("NOPERM no permissions to run the 'evalsha' command", "ACL SETUSER"),
        ("WRONGPASS invalid username-password pair", "--redis-url"),
        ("ERR Error running script (call to f_0): @user_script:1: boom", "Lua script"),
    ],
)
def test_the_error_line_says_what_to_do(
    reply: str, advice: str, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(SystemExit) as exited, exit_when_fatal():
        judge(server_error(reply), "read applied offsets")
    assert exited.value.code == EXIT_FATAL
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert advice in record.getMessage()
    assert record.exc_info is None, "one line, no traceback"
