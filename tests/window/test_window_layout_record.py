"""The layout recorded by the first process that writes: later processes that do not fit it stop
with one ERROR naming both layouts and exit 78; Redis being down at start is waited out."""

from __future__ import annotations

import logging
import threading
from typing import Any

import fakeredis
import pytest
import redis

from loginmetrics.runtime.backoff import Backoff
from loginmetrics.runtime.redis_errors import FatalRedisError, exit_when_fatal
from loginmetrics.runtime.signals import EXIT_FATAL
from loginmetrics.window import (
    LayoutMismatchError,
    RecordedLayout,
    Role,
    WindowLayout,
    await_layout_agreement,
    read_layout,
)
from loginmetrics.window.layout_record import judge_layout, record_layout

PREFIX = "t"


def layout(bucket: int = 1, window: int = 300) -> WindowLayout:
    return WindowLayout(prefix=PREFIX, bucket_seconds=bucket, window_seconds=window)


def test_the_first_worker_records_its_layout(fake_redis: fakeredis.FakeRedis) -> None:
    record_layout(fake_redis, layout(2, 120), Role.WORKER)
    recorded = read_layout(fake_redis, layout())
    assert recorded == RecordedLayout(
        prefix=PREFIX,
        bucket_seconds=2,
        time_basis="processing",
        kept_window_seconds=120,
        bucket_ttl_seconds=120 + 2 + 60,
    )


def test_workers_with_the_recorded_layout_start(fake_redis: fakeredis.FakeRedis) -> None:
    record_layout(fake_redis, layout(), Role.WORKER)
    assert record_layout(fake_redis, layout(), Role.WORKER).kept_window_seconds == 300
    assert record_layout(fake_redis, layout(), Role.AGGREGATOR).bucket_seconds == 1


def test_a_worker_with_other_buckets_is_refused_naming_both_layouts(
    fake_redis: fakeredis.FakeRedis,
) -> None:
    record_layout(fake_redis, layout(bucket=1), Role.WORKER)
    with pytest.raises(LayoutMismatchError) as refused:
        record_layout(fake_redis, layout(bucket=2), Role.WORKER)
    message = str(refused.value)
    assert "1 s buckets recorded, 2 s buckets here" in message
    assert "Recorded: prefix t, 1 s buckets" in message
    assert "This worker: prefix t, 2 s buckets" in message
    assert "--bucket-seconds 1 --window 300" in message
    assert "redis-cli DEL t:layout" in message
    assert read_layout(fake_redis, layout()).bucket_seconds == 1  # the record is unchanged


def test_a_worker_keeping_buckets_for_another_window_is_refused(
    fake_redis: fakeredis.FakeRedis,
) -> None:
    record_layout(fake_redis, layout(window=300), Role.WORKER)
    with pytest.raises(LayoutMismatchError, match="kept for a 300 s window recorded, 120 s here"):
        record_layout(fake_redis, layout(window=120), Role.WORKER)


def test_an_aggregator_reading_longer_than_buckets_are_kept_is_refused(
    fake_redis: fakeredis.FakeRedis,
) -> None:
    record_layout(fake_redis, layout(window=120), Role.WORKER)
    assert record_layout(fake_redis, layout(window=60), Role.AGGREGATOR)  # shorter is fine
    with pytest.raises(LayoutMismatchError, match="shorter than this aggregator's 300 s"):
        record_layout(fake_redis, layout(window=300), Role.AGGREGATOR)


def test_a_worker_started_after_a_longer_aggregator_is_refused(
    fake_redis: fakeredis.FakeRedis,
) -> None:
    """Whichever starts second sees the difference: the aggregator recorded what it reads."""
    record_layout(fake_redis, layout(window=300), Role.AGGREGATOR)
    with pytest.raises(LayoutMismatchError, match="an aggregator reads 300 s windows"):
        record_layout(fake_redis, layout(window=120), Role.WORKER)
    assert read_layout(fake_redis, layout()).kept_window_seconds is None


def test_an_aggregator_with_other_buckets_is_refused(fake_redis: fakeredis.FakeRedis) -> None:
    record_layout(fake_redis, layout(bucket=1), Role.WORKER)
    with pytest.raises(LayoutMismatchError, match="This aggregator: prefix t, 5 s buckets"):
        record_layout(fake_redis, layout(bucket=5), Role.AGGREGATOR)


def test_a_record_changed_between_read_and_write_is_read_again(
    fake_redis: fakeredis.FakeRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two processes starting at once: the one whose compare-and-set lost judges again against
    what the other recorded, and is refused rather than overwriting it."""
    import loginmetrics.window.layout_record as module

    real_judge = module.judge_layout
    raced = False

    def judge_then_race(recorded: RecordedLayout, own: WindowLayout, role: Role) -> Any:
        nonlocal raced
        verdict = real_judge(recorded, own, role)
        if not raced:  # the other process records its layout between our read and write
            raced = True
            record_layout(fake_redis, layout(bucket=1), Role.WORKER)
        return verdict

    monkeypatch.setattr(module, "judge_layout", judge_then_race)
    with pytest.raises(LayoutMismatchError, match="1 s buckets recorded, 3 s buckets here"):
        record_layout(fake_redis, layout(bucket=3), Role.WORKER)
    assert read_layout(fake_redis, layout()).bucket_seconds == 1


def test_an_unrecorded_layout_judges_as_writes_only() -> None:
    verdict = judge_layout(RecordedLayout(), layout(), Role.AGGREGATOR)
    assert verdict.conflicts == ()
    assert verdict.writes == {
        "prefix": PREFIX,
        "bucket_seconds": "1",
        "time_basis": "processing",
        "aggregator_window_seconds": "300",
    }


class FlakyRedis:
    """A client whose first ``failures`` calls find Redis down."""

    def __init__(self, inner: fakeredis.FakeRedis, failures: int) -> None:
        self._inner = inner
        self.failures = failures

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if name != "hgetall":
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            if self.failures:
                self.failures -= 1
                raise redis.ConnectionError("Connection refused")
            return attribute(*args, **kwargs)

        return call


def test_redis_down_at_start_is_retried_until_it_answers(
    fake_redis: fakeredis.FakeRedis, caplog: pytest.LogCaptureFixture
) -> None:
    waits: list[float] = []
    client: Any = FlakyRedis(fake_redis, failures=6)
    recorded = await_layout_agreement(
        client,
        layout(),
        Role.WORKER,
        threading.Event(),
        backoff=Backoff(jitter=lambda low, high: 1.0),
        wait=waits.append,
    )
    assert recorded is not None
    assert recorded.bucket_seconds == 1
    assert waits == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2]
    levels = [r.levelname for r in caplog.records if "recording the window layout" in r.message]
    assert levels == ["WARNING"] * 4 + ["ERROR"] * 2  # loud once the outage lasts


def test_a_stop_while_redis_is_down_ends_the_wait(fake_redis: fakeredis.FakeRedis) -> None:
    stop = threading.Event()
    client: Any = FlakyRedis(fake_redis, failures=1000)
    waited = await_layout_agreement(client, layout(), Role.WORKER, stop, wait=lambda _: stop.set())
    assert waited is None


def test_a_refused_permission_is_not_retried(fake_redis: fakeredis.FakeRedis) -> None:
    class NoPermission(FlakyRedis):
        def hgetall(self, *_args: Any) -> Any:
            raise redis.exceptions.NoPermissionError("no permissions to run 'hgetall'")

    client: Any = NoPermission(fake_redis, 0)
    with pytest.raises(FatalRedisError, match=r"NOPERM|NoPermissionError"):
        await_layout_agreement(client, layout(), Role.WORKER, threading.Event(), wait=print)


def test_a_mismatch_ends_the_process_with_one_error_and_exit_78(
    fake_redis: fakeredis.FakeRedis, caplog: pytest.LogCaptureFixture
) -> None:
    record_layout(fake_redis, layout(bucket=1), Role.WORKER)
    with pytest.raises(SystemExit) as exited, exit_when_fatal():
        await_layout_agreement(fake_redis, layout(bucket=2), Role.WORKER, threading.Event())
    assert exited.value.code == EXIT_FATAL
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "1 s buckets recorded, 2 s buckets here" in errors[0].getMessage()
