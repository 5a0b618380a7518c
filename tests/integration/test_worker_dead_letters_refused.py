"""A dead-letter topic that refuses some letters for good (its max.message.bytes is smaller than
they are): the worker gives those up with one ERROR each, delivers the others, counts every
message, and never restarts or stalls."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from loginmetrics.window import WindowLayout
from tests.support import (
    child_pids,
    consume,
    loginmetrics,
    pipeline_env,
    produce,
    wait_for_messages,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

SMALL, LARGE = 20, 5


def test_letters_too_large_for_the_dead_letter_topic_are_given_up_not_retried(
    kafka_bootstrap: str,
    redis_url: str,
    redis_client: redis.Redis,
    redis_prefix: str,
    unique_group_id: str,
    new_topic: Callable[..., str],
    tmp_path: Path,
) -> None:
    source = new_topic(1)
    dlq = new_topic(1, config={"max.message.bytes": "2000"})
    small = [(b"s", b"not json %d" % n) for n in range(SMALL)]
    # Random text: the producer's compression cannot shrink it under the topic's limit.
    large = [(b"l", b"not json " + base64.b64encode(os.urandom(15_000))) for _ in range(LARGE)]
    valid = [(b"v", json.dumps(_login(n)).encode()) for n in range(30)]
    produce(kafka_bootstrap, source, small + large + valid)

    env = pipeline_env(
        kafka_bootstrap,
        redis_url,
        redis_prefix,
        input_topic=source,
        dlq_topic=dlq,
        group_id=unique_group_id,
    )
    log = tmp_path / "worker.log"
    with loginmetrics("worker", "--processes", "1", env=env, log=log) as pool:
        totals = wait_for_messages(
            redis_client, WindowLayout(prefix=redis_prefix), SMALL + LARGE + 30, timeout=60
        )
        letters = consume(kafka_bootstrap, dlq, SMALL, timeout=30)
        assert len(child_pids(pool.pid)) == 1
    assert pool.returncode == 0
    assert "exited with code" not in log.read_text(), "the worker never died"
    assert (totals.valid, totals.invalid) == (30, SMALL + LARGE)
    assert sorted(json.loads(v)["source"]["offset"] for v in letters) == list(range(SMALL))
    errors = [line for line in log.read_text().splitlines() if " ERROR " in line]
    assert len(errors) == LARGE, errors
    assert all("refused by" in e and "max.message.bytes" in e for e in errors)


def _login(n: int) -> dict[str, object]:
    return {
        "user_id": f"u{n}",
        "app_version": "2.3.0",
        "ip": "10.0.0.1",
        "locale": "TX",
        "device_type": "iOS",
        "timestamp": 1_736_653_976 + n,
    }
