"""Workers on the real broker and Redis: every message counted exactly once or dead-lettered."""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pytest
import redis

from loginmetrics.window import WindowLayout
from tests.support import (
    LoginStream,
    assert_matches,
    child_pids,
    consume,
    current_totals,
    login_stream,
    loginmetrics,
    pipeline_env,
    produce,
    wait_for_messages,
)

pytestmark = pytest.mark.integration


class Backlog(NamedTuple):
    """A stream waiting on a fresh input topic, and what a worker pool needs to drain it."""

    source: str  # the input topic
    dlq: str  # the dead-letter topic
    env: dict[str, str]
    layout: WindowLayout


@pytest.fixture
def backlog(
    kafka_bootstrap: str,
    redis_url: str,
    redis_prefix: str,
    new_topic: Callable[..., str],
    unique_group_id: str,
) -> Callable[..., Backlog]:
    """Factory: ``backlog(stream, **settings)`` produces ``stream`` to a new 4-partition topic
    and returns it with a dead-letter topic and the environment of a worker pool in the test's
    own group and Redis prefix, with LOGINMETRICS_<SETTING>s added."""

    def make(stream: LoginStream, **settings: str | int) -> Backlog:
        source, dlq = new_topic(4), new_topic(1)
        produce(kafka_bootstrap, source, stream.messages)
        env = pipeline_env(
            kafka_bootstrap,
            redis_url,
            redis_prefix,
            input_topic=source,
            dlq_topic=dlq,
            group_id=unique_group_id,
            **settings,
        )
        return Backlog(source, dlq, env, WindowLayout(prefix=redis_prefix))

    return make


def test_every_message_is_counted_or_dead_lettered(
    kafka_bootstrap: str,
    redis_client: redis.Redis,
    backlog: Callable[..., Backlog],
    tmp_path: Path,
) -> None:
    stream = login_stream(4_000, users=500, invalid_every=25)
    source, dlq, env, layout = backlog(stream)

    with loginmetrics("worker", "--processes", "2", env=env, log=tmp_path / "worker.log") as pool:
        totals = wait_for_messages(redis_client, layout, len(stream.messages), timeout=60)
        letters = [json.loads(v) for v in consume(kafka_bootstrap, dlq, stream.truth.invalid)]
    assert pool.returncode == 0, (tmp_path / "worker.log").read_text()[-3000:]

    assert_matches(totals, stream.truth)
    assert Counter(letter["error_code"] for letter in letters) == stream.truth.invalid_codes
    sources = {(letter["source"]["partition"], letter["source"]["offset"]) for letter in letters}
    assert len(sources) == stream.truth.invalid, "each dead letter names its own source offset"
    assert all(letter["topic_name"] == source for letter in letters)


def test_sigkill_of_a_worker_mid_stream_loses_and_doubles_nothing(
    redis_client: redis.Redis,
    backlog: Callable[..., Backlog],
    tmp_path: Path,
) -> None:
    stream = login_stream(30_000, users=5_000, invalid_every=50)
    # many small batches, so the kill lands in the middle of the stream
    _, _, env, layout = backlog(stream, batch_size=200)
    total = len(stream.messages)
    log = tmp_path / "worker.log"

    with loginmetrics("worker", "--processes", "2", env=env, log=log) as pool:
        deadline = time.monotonic() + 60
        while current_totals(redis_client, layout).total_messages < total // 4:
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.05)
        victims = child_pids(pool.pid)
        assert len(victims) == 2
        os.kill(victims[0], signal.SIGKILL)
        assert current_totals(redis_client, layout).total_messages < total, "killed too late"

        totals = wait_for_messages(redis_client, layout, total, timeout=90)
        time.sleep(2)  # anything applied twice would show up now
        totals = current_totals(redis_client, layout)
        assert victims[0] not in child_pids(pool.pid)
        assert len(child_pids(pool.pid)) == 2, "the supervisor restarts the killed worker"

    assert totals.total_messages == total
    assert_matches(totals, stream.truth)
    assert "exited with code -9" in log.read_text()
