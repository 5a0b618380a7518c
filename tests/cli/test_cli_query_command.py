"""``loginmetrics query`` over fakeredis: the metric event of a range (JSON or a table), rounded
where the seconds are gone and saying so, and clear refusals with exit 2 (bad input, past the
retention) or 1 (Redis not answering)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import fakeredis
import pytest
import redis
from click.testing import CliRunner

from loginmetrics.cli import query_command
from loginmetrics.cli.main import cli
from loginmetrics.window import BucketField, Role, Rollup, WindowLayout
from loginmetrics.window.layout_record import record_layout

PREFIX = "q"
# The workers keep 60 s of second buckets; minutes and hours are rolled up for the retention.
LAYOUT = WindowLayout(prefix=PREFIX, window_seconds=60)
ROLLED_WHILE_KEPT = WindowLayout(prefix=PREFIX, window_seconds=7200)


@pytest.fixture
def window(monkeypatch: pytest.MonkeyPatch) -> Iterator[fakeredis.FakeRedis]:
    server = fakeredis.FakeServer()
    client = fakeredis.FakeRedis(server=server)
    monkeypatch.setattr(
        query_command, "redis_client", lambda *_a: fakeredis.FakeRedis(server=server)
    )
    record_layout(client, LAYOUT, Role.WORKER)
    yield client
    client.close()


def now_of(client: fakeredis.FakeRedis) -> int:
    return int(client.time()[0])


def login_every_second(client: fakeredis.FakeRedis, start: int, end: int) -> None:
    """One valid login per second from its own user, on iOS in TX; one invalid every 10 s."""
    for second in range(start, end):
        key = {field: LAYOUT.bucket_key(second, field) for field in BucketField}
        client.pfadd(key[BucketField.USERS], f"user-{second}")
        client.pfadd(key[BucketField.IPS], f"10.0.{second % 7}.1")
        client.zadd(key[BucketField.DEVICES], {"iOS": 1})
        client.zadd(key[BucketField.VERSIONS], {"2.3.0": 1})
        client.zadd(key[BucketField.LOCALES], {"TX": 1})
        client.hset(key[BucketField.COUNTS], mapping={"valid": 1, "invalid": int(second % 10 == 0)})


def query(*args: str) -> Any:
    return CliRunner().invoke(cli, ["query", "--redis-prefix", PREFIX, *args])


def test_last_15_minutes_is_the_metric_event_of_the_range_ending_now(
    window: fakeredis.FakeRedis,
) -> None:
    now = now_of(window)
    login_every_second(window, now - 600, now - 300)

    result = query("--last", "15m")

    assert result.exit_code == 0, result.output
    event = json.loads(result.stdout)
    assert event["window_seconds"] == 900
    assert event["window_size"] == 300
    assert event["total_errors"] == 30
    assert event["active_users"] == pytest.approx(300, rel=0.02)
    assert event["location_distribution"] == {"TX": 300}
    assert result.stderr == ""  # nothing rounded: the range ends now and starts on no edge


def test_an_old_range_reads_rolled_minutes_and_says_when_it_was_widened(
    window: fakeredis.FakeRedis,
) -> None:
    now = now_of(window)
    hour_ago = now // 60 * 60 - 3600
    login_every_second(window, hour_ago, hour_ago + 600)
    Rollup(window, ROLLED_WHILE_KEPT, max_minutes=200).roll(now - 5)

    result = query("--from", str(hour_ago + 30), "--to", str(hour_ago + 300))

    assert result.exit_code == 0, result.output
    event = json.loads(result.stdout)
    # The seconds of an hour ago are past the 60 s the workers keep: whole minutes are read.
    assert event["window_seconds"] == 300
    assert event["window_size"] == 300
    assert "widened to whole minutes" in result.stderr


def test_table_shows_the_event_like_print(window: fakeredis.FakeRedis) -> None:
    now = now_of(window)
    login_every_second(window, now - 50, now - 10)

    result = query("--last", "1m", "--table")

    assert result.exit_code == 0, result.output
    assert "(60 s)" in result.stdout
    assert "valid         40" in result.stdout
    assert "TX" in result.stdout


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["--last", "2d"], "only the last 86400 s"),
        (["--from", "2099-01-01T00:00:00", "--to", "2099-01-02T00:00:00"], "in the future"),
        (["--last", "15m", "--from", "1700000000"], "either --last, or --from and --to"),
        (["--from", "1700000000"], "give --last"),
        (["--from", "yesterday", "--to", "1700000000"], "--from='yesterday' is not a time"),
        (["--last", "15 minutes"], "is not a duration"),
        (["--from", "2025-01-21T01:00:00", "--to", "2025-01-21T00:00:00"], "must end after"),
    ],
)
def test_a_range_it_cannot_answer_is_refused_with_the_reason(
    window: fakeredis.FakeRedis, args: list[str], reason: str
) -> None:
    result = query(*args)

    assert result.exit_code == 2
    assert reason in result.output
    assert result.stdout == ""


def test_redis_not_answering_exits_1(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        query_command,
        "redis_client",
        lambda *_a: redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5),
    )

    result = query("--last", "15m")

    assert result.exit_code == 1
    assert "did not answer" in result.output
