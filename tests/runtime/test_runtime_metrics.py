"""The exported figures: a pool's processes summed into one scrape (prometheus-client's
multiprocess mode, real spawned processes), a dead process's live gauges forgotten, the contract's
names and types, figures made before a switch to a pool's directory made anew in it, consumer lag
from librdkafka statistics, Redis error kinds."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import pytest
import redis
from prometheus_client import CollectorRegistry, generate_latest
from redis._parsers.base import BaseParser

from loginmetrics.aggregator.metrics import AggregatorMetrics, aggregator_metrics
from loginmetrics.runtime.metrics import (
    MULTIPROCESS_DIR_ENV,
    CommonMetrics,
    common_metrics,
    pool_registry,
    process_exited,
    process_registry,
    redis_error_kind,
    use_multiprocess_dir,
)
from loginmetrics.worker.lag import partition_lags
from loginmetrics.worker.metrics import WorkerMetrics, worker_metrics
from tests.deploy.metric_contract import AGGREGATOR_JOB, CONTRACT, WORKER_JOB


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    for family in registry.collect():
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return None


def _pool_child(valid: int, invalid: int, paused: int) -> None:
    """A spawned pool process: its figures go to the directory its environment names."""
    figures = worker_metrics()
    figures.batch_applied(valid, invalid, ["missing_fields"] * invalid, 0.004)
    figures.partitions_paused.set(paused)
    common_metrics().log_events.labels("ERROR").inc()


def test_a_pool_is_one_scrape_and_a_dead_process_drops_its_live_gauges(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MULTIPROCESS_DIR_ENV, str(tmp_path))  # spawned children inherit it
    context = multiprocessing.get_context("spawn")
    children = [
        context.Process(target=_pool_child, args=(100, 7, 2)),
        context.Process(target=_pool_child, args=(50, 3, 1)),
    ]
    for child in children:
        child.start()
    for child in children:
        child.join(60)
        assert child.exitcode == 0

    registry = pool_registry(str(tmp_path))
    assert value(registry, "loginmetrics_messages_total", outcome="valid") == 150
    assert value(registry, "loginmetrics_messages_total", outcome="invalid") == 10
    assert value(registry, "loginmetrics_dead_letters_total", error_code="missing_fields") == 10
    assert value(registry, "loginmetrics_batches_total", result="applied") == 2
    assert value(registry, "loginmetrics_batch_apply_seconds_count") == 2
    assert value(registry, "loginmetrics_offset_gaps_total") == 0  # there from the start
    assert value(registry, "loginmetrics_log_events_total", level="ERROR") == 2
    assert value(registry, "loginmetrics_log_events_total", level="CRITICAL") == 0
    assert value(registry, "loginmetrics_partitions_paused") == 3

    assert children[0].pid is not None
    process_exited(children[0].pid, str(tmp_path))
    registry = pool_registry(str(tmp_path))
    assert value(registry, "loginmetrics_partitions_paused") == 1, "only the live process's"
    assert value(registry, "loginmetrics_messages_total", outcome="valid") == 150, "counters stay"
    assert os.environ[MULTIPROCESS_DIR_ENV] == str(tmp_path)


def _switching_child(directory: str) -> None:
    """A process that made its figures before it switched to a pool's directory (a supervisor's
    log handler does): what it counts after the switch must reach the directory."""
    worker_metrics().offsets_skipped(1_000)
    aggregator_metrics().metric_events.inc(1_000)
    common_metrics().log_events.labels("ERROR").inc(1_000)
    use_multiprocess_dir(directory)
    worker_metrics().offsets_skipped(4)
    aggregator_metrics().metric_events.inc(5)
    common_metrics().log_events.labels("ERROR").inc(6)


def test_figures_made_before_the_switch_to_a_pool_directory_are_made_anew_in_it(
    tmp_path: Path,
) -> None:
    child = multiprocessing.get_context("spawn").Process(
        target=_switching_child, args=(str(tmp_path),)
    )
    child.start()
    child.join(60)
    assert child.exitcode == 0
    registry = pool_registry(str(tmp_path))
    assert value(registry, "loginmetrics_offset_gaps_total") == 4
    assert value(registry, "loginmetrics_metric_events_total") == 5
    assert value(registry, "loginmetrics_log_events_total", level="ERROR") == 6


@pytest.mark.parametrize(
    ("job", "collectors"),
    [
        (WORKER_JOB, [*WorkerMetrics().collectors(), *CommonMetrics().collectors()]),
        (AGGREGATOR_JOB, [*AggregatorMetrics().collectors(), *CommonMetrics().collectors()]),
    ],
)
def test_each_role_exports_its_contract_metrics_with_their_types_and_labels(
    job: str, collectors: list[CollectorRegistry]
) -> None:
    registry = process_registry(*collectors)
    exported = {family.name: family for family in registry.collect()}
    for metric in CONTRACT:
        if job not in metric.jobs or metric.name == "up":
            continue
        # prometheus-client names a counter's family without its _total suffix.
        family = exported[metric.name.removesuffix("_total")]
        assert family.type == metric.kind, metric.name
        labels = {key for s in family.samples for key in s.labels} - {"le"}
        if metric.labels and family.samples:
            assert labels == metric.labels, metric.name
    text = generate_latest(registry).decode()
    assert "_created" not in text


def test_lag_of_fetched_partitions_from_librdkafka_statistics() -> None:
    statistics = {
        "topics": {
            "user-login": {
                "partitions": {
                    "0": {"partition": 0, "fetch_state": "active", "consumer_lag": 120},
                    # nothing committed yet: the consumed position's lag
                    "1": {
                        "partition": 1,
                        "fetch_state": "active",
                        "consumer_lag": -1,
                        "consumer_lag_stored": 7,
                    },
                    "2": {"partition": 2, "fetch_state": "none", "consumer_lag": 55},  # not ours
                    "3": {"partition": 3, "fetch_state": "active", "consumer_lag": -1},  # unknown
                    "-1": {"partition": -1, "fetch_state": "none", "consumer_lag": -1},
                }
            },
            "other": {"partitions": {"0": {"partition": 0, "fetch_state": "active"}}},
        }
    }
    assert partition_lags(statistics, "user-login") == {0: 120, 1: 7}
    assert partition_lags({}, "user-login") == {}


def server_error(reply: str) -> redis.RedisError:
    """The exception redis-py raises for an error reply from the server."""
    error: redis.RedisError = BaseParser.parse_error(reply)  # type: ignore[no-untyped-call]
    return error


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (redis.ConnectionError("Connection refused"), "connection"),
        (redis.TimeoutError("Timeout reading from socket"), "timeout"),
        (server_error("OOM command not allowed when used memory > 'maxmemory'."), "OOM"),
        (server_error("READONLY You can't write against a read only replica."), "READONLY"),
        (server_error("LOADING Redis is loading the dataset in memory"), "LOADING"),
        (server_error("NOPERM User has no permissions to run the 'evalsha' command"), "NOPERM"),
        (server_error("WRONGTYPE Operation against a key holding the wrong kind"), "WRONGTYPE"),
        (redis.DataError("Invalid input"), "other"),
    ],
)
def test_redis_error_kinds(error: redis.RedisError, kind: str) -> None:
    assert redis_error_kind(error) == kind


def test_valid_logins_event_time_cannot_place_are_their_own_outcome() -> None:
    figures = WorkerMetrics()
    figures.batch_applied(10, 4, ["too_late", "too_late", "future_timestamp", "wrong_type"], 0.01)
    registry = process_registry(*figures.collectors())

    outcomes = {
        outcome: value(registry, "loginmetrics_messages_total", outcome=outcome)
        for outcome in ("valid", "invalid", "too_late", "future_timestamp")
    }
    assert outcomes == {"valid": 10, "invalid": 1, "too_late": 2, "future_timestamp": 1}
    assert value(registry, "loginmetrics_dead_letters_total", error_code="too_late") == 2
