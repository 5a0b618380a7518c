"""Over 10,000 hostile payloads (random bytes, invalid UTF-8, deep nesting, huge strings, numbers
as strings, NaN/Infinity, duplicate keys, nulls, tombstones, blank and over-long values, ~1 MB
messages...) interleaved with valid logins, and floods of valid but hostile traffic (60,000
distinct versions, 60 kB user ids, 300 kB of control characters): no worker falls over or
restarts, each unusable payload is dead-lettered once with the code the spec gives it in a letter
the DLQ accepts, the valid ones are counted exactly, and Redis and metric events stay bounded."""

from __future__ import annotations

import json
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import pytest
import redis

from loginmetrics.cli.traffic import PlannedMessage
from loginmetrics.window import WindowLayout, WindowTotals
from loginmetrics.window.layout import OTHER_VALUES, TRACKED_VALUES
from loginmetrics.worker.dead_letter import DEAD_LETTER_MAX_BYTES
from tests.reliability.conftest import WorkerRun
from tests.reliability.corpus import MAX_MESSAGE_BYTES, flood, hostile_corpus
from tests.reliability.harness import (
    Feeder,
    check_dead_letters,
    read_topic,
    tail,
    wait_for_total,
)
from tests.support import (
    GroundTruth,
    assert_matches,
    child_pids,
    loginmetrics,
    truth_of,
    worker_pids,
)

pytestmark = [pytest.mark.integration, pytest.mark.reliability, pytest.mark.timeout(180)]

# The broker's default limit is ~1 MB; the corpus has messages just over it.
LARGE_MESSAGES = {"max.message.bytes": "2097152"}


class Drained(NamedTuple):
    """What a worker pool made of a corpus: the window, the dead letters, the ground truth."""

    totals: WindowTotals
    letters: list[bytes]
    truth: GroundTruth
    layout: WindowLayout


@contextmanager
def worker_pool(run: WorkerRun) -> Iterator[subprocess.Popen[bytes]]:
    """Two worker processes; on the way out, none of them may have died or been restarted."""
    with loginmetrics("worker", "--processes", "2", env=run.env, log=run.log) as pool:
        workers = worker_pids(pool.pid, 2)
        assert len(workers) == 2, tail(run.log)
        yield pool
        assert sorted(child_pids(pool.pid)) == sorted(workers), "a worker process restarted"
    assert pool.returncode == 0, tail(run.log)
    assert "exited with code" not in run.log.read_text()


def feed_and_drain(
    local_kafka: str,
    redis_client: redis.Redis,
    run: WorkerRun,
    corpus: list[PlannedMessage],
    timeout: float = 120,
    rate: float | None = None,
) -> Drained:
    """Produce ``corpus`` while the pool runs; the window must then hold every message, and the
    DLQ a dead letter with the right code for every unusable one, each once."""
    with Feeder(local_kafka, run.source, corpus, rate) as feeder:
        feeder.wait_finished(timeout)
    totals = wait_for_total(redis_client, run.layout, len(corpus), timeout=timeout, log=run.log)
    truth = truth_of(corpus)
    assert (totals.valid, totals.invalid) == (truth.valid, truth.invalid)
    letters = read_topic(local_kafka, run.dlq)
    duplicates, codes = check_dead_letters(letters, feeder.expected_dead_letters(), run.source)
    assert duplicates == 0, "no crash, so no dead letter twice"
    assert codes == truth.invalid_codes
    return Drained(totals, letters, truth, run.layout)


def bucket_memory(client: redis.Redis, layout: WindowLayout) -> dict[int, int]:
    """Bytes (MEMORY USAGE) of each bucket's keys, by bucket start."""
    used: dict[int, int] = {}
    for key in client.scan_iter(f"{layout.bucket_key_prefix}*", count=1000):
        start = int(key.decode().removeprefix(layout.bucket_key_prefix).split(":")[0])
        used[start] = used.get(start, 0) + int(client.memory_usage(key) or 0)
    return used


def wait_for_event(bootstrap: str, topic: str, total: int, log: Path) -> list[bytes]:
    """Every metric event so far, once one counts ``total`` messages."""
    deadline = time.monotonic() + 60
    while True:
        events = read_topic(bootstrap, topic)
        if any(json.loads(value)["total_messages"] == total for value in events):
            return events
        assert time.monotonic() < deadline, f"no metric event of {total} messages: {tail(log)}"
        time.sleep(1)


def test_hostile_payloads_are_dead_lettered_with_their_codes_and_valid_ones_counted(
    local_kafka: str,
    local_redis_url: str,
    redis_client: redis.Redis,
    worker_run: Callable[..., WorkerRun],
) -> None:
    corpus = hostile_corpus()
    hostile = [m for m in corpus if m.code is not None]
    assert len(hostile) >= 10_000
    run = worker_run(
        local_redis_url,
        3,
        source_config=LARGE_MESSAGES,
        max_message_bytes=MAX_MESSAGE_BYTES,
        batch_size=1_000,
    )

    with worker_pool(run):
        drained = feed_and_drain(local_kafka, redis_client, run, corpus)

    assert_matches(drained.totals, drained.truth)
    kinds = Counter(m.kind for m in hostile)
    print(
        f"{len(corpus)} messages: {len(hostile)} hostile "
        f"({dict(drained.truth.invalid_codes)}), {drained.truth.valid} valid; kinds {dict(kinds)}"
    )


def test_sixty_thousand_versions_stay_bounded_in_redis_and_in_metric_events(
    local_kafka: str,
    local_redis_url: str,
    redis_client: redis.Redis,
    worker_run: Callable[..., WorkerRun],
    new_topic: Callable[..., str],
    tmp_path: Path,
) -> None:
    corpus = flood("new_version", 60_000, 3_000, seed=21)
    run = worker_run(local_redis_url, 3)
    metrics = new_topic(1)
    aggregator_env = {
        **run.env,
        "LOGINMETRICS_METRICS_TOPIC": metrics,
        "LOGINMETRICS_EMIT_INTERVAL": "1",
    }
    aggregator_log = tmp_path / "aggregator.log"

    with (
        worker_pool(run),
        loginmetrics("aggregate", env=aggregator_env, log=aggregator_log) as aggregator,
    ):
        # ~15,000 a second: the flood spreads over several buckets, each filled past its limit
        drained = feed_and_drain(local_kafka, redis_client, run, corpus, rate=15_000)
        events = wait_for_event(local_kafka, metrics, len(corpus), aggregator_log)
    assert aggregator.returncode == 0, tail(aggregator_log)

    totals, truth = drained.totals, drained.truth
    assert len(truth.versions) == 60_000 + 3
    assert totals.devices == dict(truth.devices)  # few values: exact
    assert totals.locales == dict(truth.locales)
    assert sum(totals.versions.values()) == totals.valid
    assert totals.versions[OTHER_VALUES] > 0
    # Redis: every bucket tracks at most TRACKED_VALUES versions (plus "__other__"), exactly.
    for key in redis_client.scan_iter(f"{run.layout.bucket_key_prefix}*:versions"):
        pairs: list[tuple[bytes, float]] = redis_client.zrange(key, 0, -1, withscores=True)  # type: ignore[assignment]
        assert len(pairs) <= TRACKED_VALUES + 1
        for member, count in pairs:
            if member.decode() != OTHER_VALUES:
                assert count <= truth.versions[member.decode()]
    memory = bucket_memory(redis_client, run.layout)
    # Metric events: at most --max-distribution-values listed, the sum always window_size.
    for value in events:
        event = json.loads(value)
        for name in ("device_distribution", "version_distribution", "location_distribution"):
            assert sum(event[name].values()) == event["window_size"], name
            assert len(event[name]) <= 101
    largest_event = max(len(value) for value in events)
    assert largest_event < 256 * 1024
    print(
        f"60k-version flood: {len(corpus)} messages, {len(events)} metric events, largest "
        f"{largest_event} bytes; Redis memory per bucket: max {max(memory.values())} bytes over "
        f"{len(memory)} buckets ({sorted(memory.values())[len(memory) // 2]} median)"
    )


def test_sixty_kilobyte_user_ids_are_value_too_long(
    local_kafka: str,
    local_redis_url: str,
    redis_client: redis.Redis,
    worker_run: Callable[..., WorkerRun],
) -> None:
    corpus = flood("long_user_id", 700, 3_000, seed=22)
    run = worker_run(local_redis_url, 3, batch_size=1_000)

    with worker_pool(run):
        drained = feed_and_drain(local_kafka, redis_client, run, corpus)

    assert_matches(drained.totals, drained.truth)
    assert drained.truth.invalid_codes == {"value_too_long": 700}
    largest = max(len(letter) for letter in drained.letters)
    assert largest < 70_000  # the document is kept whole: it fits
    print(f"60 kB user ids: 700 dead-lettered as value_too_long, largest letter {largest} bytes")


def test_control_character_payloads_make_dead_letters_that_fit(
    local_kafka: str,
    local_redis_url: str,
    redis_client: redis.Redis,
    worker_run: Callable[..., WorkerRun],
) -> None:
    # 300 kB payloads under a raised --max-message-bytes; re-encoded whole, the unusable ones
    # would make dead letters of up to 1.8 MB, over the DLQ producer's 1 MB limit.
    corpus = flood("control_characters", 60, 2_000, seed=23, max_bytes=400_000)
    run = worker_run(local_redis_url, 3, source_config=LARGE_MESSAGES, max_message_bytes=400_000)

    with worker_pool(run):
        drained = feed_and_drain(local_kafka, redis_client, run, corpus)

    assert_matches(drained.totals, drained.truth)
    sizes = sorted(len(letter) for letter in drained.letters)
    assert sizes[-1] <= DEAD_LETTER_MAX_BYTES
    parsed = [json.loads(letter) for letter in drained.letters]
    excerpted = [letter for letter in parsed if letter.get("message_truncated")]
    assert excerpted, "raw control characters re-encode to 1.8 MB: they must be excerpted"
    assert all(letter["message_bytes"] > 280_000 for letter in excerpted)
    print(
        f"300 kB control characters: {len(drained.letters)} dead letters ({len(excerpted)} "
        f"excerpted), largest {sizes[-1]} bytes; {drained.truth.valid} valid counted"
    )
