"""Over 10,000 hostile payloads (random bytes, invalid UTF-8, deep nesting, huge strings, numbers
as strings, NaN/Infinity, duplicate keys, nulls, tombstones, ~1 MB messages...) interleaved with
valid logins: no worker falls over, each hostile payload is dead-lettered once with the code the
spec gives it, and the valid ones are counted exactly."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest
import redis

from tests.pipeline import child_pids, loginmetrics
from tests.reliability.conftest import WorkerRun
from tests.reliability.corpus import MAX_MESSAGE_BYTES, hostile_corpus
from tests.reliability.harness import (
    Feeder,
    assert_matches,
    check_dead_letters,
    read_topic,
    tail,
    truth_of,
    wait_for_total,
)

pytestmark = [pytest.mark.integration, pytest.mark.reliability, pytest.mark.timeout(180)]

# The broker's default limit is ~1 MB; the corpus has messages just over it.
LARGE_MESSAGES = {"max.message.bytes": "2097152"}


def test_hostile_payloads_are_dead_lettered_with_their_codes_and_valid_ones_counted(
    local_kafka: str,
    local_redis_url: str,
    redis_client: redis.Redis,
    worker_run: Callable[..., WorkerRun],
) -> None:
    corpus = hostile_corpus()
    hostile = [m for m in corpus if m.code is not None]
    assert len(hostile) >= 10_000
    source, dlq, layout, env, log = worker_run(
        local_redis_url,
        3,
        source_config=LARGE_MESSAGES,
        max_message_bytes=MAX_MESSAGE_BYTES,
        batch_size=1_000,
    )

    with loginmetrics("worker", "--processes", "2", env=env, log=log) as pool:
        with Feeder(local_kafka, source, corpus) as feeder:
            feeder.wait_finished(120)
        assert feeder.produced == len(corpus)
        workers = sorted(child_pids(pool.pid))
        totals = wait_for_total(redis_client, layout, len(corpus), timeout=120, log=log)
        assert sorted(child_pids(pool.pid)) == workers, "a worker died on the corpus"
    assert pool.returncode == 0, tail(log)
    assert "exited with code" not in log.read_text()

    truth = truth_of(corpus)
    assert_matches(totals, truth)
    duplicates, codes = check_dead_letters(
        read_topic(local_kafka, dlq), feeder.expected_dead_letters(), source
    )
    assert duplicates == 0, "no crash, so no dead letter twice"
    assert codes == truth.invalid_codes
    kinds = Counter(m.kind for m in hostile)
    print(
        f"{len(corpus)} messages: {len(hostile)} hostile ({dict(codes)}), {truth.valid} valid; "
        f"kinds {dict(kinds)}"
    )
