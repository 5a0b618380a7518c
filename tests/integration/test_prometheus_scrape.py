"""A real scrape: Debian's Prometheus server scrapes a running worker pool (two processes, one
endpoint) and an aggregator every second; its query API must report exactly the messages the
test produced, by outcome and error code, and the error rate of the last metric event. And every
contract metric (tests/deploy/metric_contract.py) is exported by the job that owns it."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from loginmetrics.window import WindowLayout
from tests.deploy.metric_contract import AGGREGATOR_JOB, CONTRACT, WORKER_JOB
from tests.support import (
    GroundTruth,
    login_stream,
    loginmetrics,
    pipeline_env,
    produce,
    topic_reader,
    wait_for_messages,
)

pytestmark = pytest.mark.integration

PROMETHEUS = "/usr/bin/prometheus"
SCRAPE_SECONDS = 1


def free_port() -> int:
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def http_get(url: str, timeout: float = 5.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        body: bytes = response.read()
        return body


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.2)


def answers(url: str) -> bool:
    try:
        http_get(url, timeout=1.0)
    except OSError:
        return False
    return True


@dataclass
class Pipeline:
    worker_port: int
    aggregator_port: int
    layout: WindowLayout
    input_topic: str
    metrics_topic: str
    logs: Path


@pytest.fixture
def pipeline(
    kafka_bootstrap: str,
    redis_url: str,
    redis_prefix: str,
    new_topic: Callable[..., str],
    unique_group_id: str,
    tmp_path: Path,
) -> Iterator[Pipeline]:
    """`worker --processes 2` and `aggregate --emit-interval 1`, each with a metrics port, on
    fresh topics, group and key prefix; running (probes alive) when yielded."""
    running = Pipeline(
        free_port(),
        free_port(),
        WindowLayout(prefix=redis_prefix),
        new_topic(4),
        new_topic(1),
        tmp_path,
    )
    env = pipeline_env(
        kafka_bootstrap,
        redis_url,
        redis_prefix,
        input_topic=running.input_topic,
        dlq_topic=new_topic(1),
        metrics_topic=running.metrics_topic,
        group_id=unique_group_id,
    )
    worker = ("worker", "--processes", "2", "--metrics-port", str(running.worker_port))
    aggregate = ("aggregate", "--emit-interval", "1", "--metrics-port")
    with ExitStack() as stack:
        stack.enter_context(loginmetrics(*worker, env=env, log=tmp_path / "worker.log"))
        stack.enter_context(
            loginmetrics(
                *aggregate, str(running.aggregator_port), env=env, log=tmp_path / "agg.log"
            )
        )
        for port in (running.worker_port, running.aggregator_port):
            probe = f"http://127.0.0.1:{port}/readyz"
            wait_until(partial(answers, probe), 30, f"{probe} ready; logs in {tmp_path}")
        yield running


class Prometheus:
    """Debian's Prometheus server on a loopback port, scraping the pipeline every second."""

    def __init__(self, pipeline: Pipeline, directory: Path) -> None:
        self.port = free_port()
        config = directory / "prometheus.yml"
        config.write_text(
            json.dumps(  # JSON is YAML
                {
                    "global": {"scrape_interval": f"{SCRAPE_SECONDS}s"},
                    "scrape_configs": [
                        {
                            "job_name": WORKER_JOB,
                            "static_configs": [{"targets": [f"127.0.0.1:{pipeline.worker_port}"]}],
                        },
                        {
                            "job_name": AGGREGATOR_JOB,
                            "static_configs": [
                                {"targets": [f"127.0.0.1:{pipeline.aggregator_port}"]}
                            ],
                        },
                    ],
                }
            )
        )
        self._log = (directory / "prometheus.log").open("wb")
        self.process = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={config}",
                f"--storage.tsdb.path={directory / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        ready = f"http://127.0.0.1:{self.port}/-/ready"
        wait_until(lambda: self.process.poll() is None and answers(ready), 30, "Prometheus")

    def query(self, expr: str) -> list[dict[str, Any]]:
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode(
            {"query": expr}
        )
        answer = json.loads(http_get(url))
        assert answer["status"] == "success", answer
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result

    def values(self, expr: str, label: str | None = None) -> dict[str | None, float]:
        return {
            (series["metric"].get(label) if label else None): float(series["value"][1])
            for series in self.query(expr)
        }

    def wait_for_scrapes(self, after: float, count: int = 2) -> None:
        """Until both jobs were scraped ``count`` times since ``after`` (Unix time)."""

        def scraped() -> bool:
            times = self.values("timestamp(up == 1)", "job")
            return len(times) == 2 and min(times.values()) >= after + count * SCRAPE_SECONDS

        wait_until(scraped, 15, f"{count} scrapes of both jobs")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()


@pytest.fixture
def prometheus(pipeline: Pipeline, tmp_path: Path) -> Iterator[Prometheus]:
    if not os.access(PROMETHEUS, os.X_OK):
        message = f"{PROMETHEUS} missing: install Debian's prometheus (stack/prerequisites.sh test)"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    server = Prometheus(pipeline, tmp_path)
    yield server
    server.stop()
    shutil.rmtree(tmp_path / "tsdb", ignore_errors=True)


def last_event(
    bootstrap: str, topic: str, until: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """The newest metric event on ``topic`` once one satisfies ``until``."""
    consumer = topic_reader(bootstrap, topic)
    events: list[dict[str, Any]] = []
    try:
        deadline = time.monotonic() + 20
        while not (events and until(events[-1])):
            assert time.monotonic() < deadline, f"no such metric event: {events[-2:]}"
            for message in consumer.consume(100, 0.5):
                assert message.error() is None, message.error()
                events.append(json.loads(message.value() or b"{}"))
        while batch := consumer.consume(100, 0.5):  # and whatever came after it
            events.extend(json.loads(m.value() or b"{}") for m in batch if m.error() is None)
    finally:
        consumer.close()
    return events[-1]


@pytest.mark.timeout(90)
def test_prometheus_reports_what_was_produced_and_the_last_error_rate(
    kafka_bootstrap: str,
    redis_client: redis.Redis,
    pipeline: Pipeline,
    prometheus: Prometheus,
) -> None:
    stream = login_stream(count=2_000, users=300, invalid_every=10)
    truth: GroundTruth = stream.truth
    total = truth.valid + truth.invalid
    produce(kafka_bootstrap, pipeline.input_topic, stream.messages)
    wait_for_messages(redis_client, pipeline.layout, total, timeout=30)
    complete = last_event(
        kafka_bootstrap, pipeline.metrics_topic, lambda e: e["total_messages"] == total
    )
    prometheus.wait_for_scrapes(after=time.time())
    event = last_event(kafka_bootstrap, pipeline.metrics_topic, lambda e: True)

    assert prometheus.values("sum(loginmetrics_messages_total)") == {None: total}
    assert prometheus.values("sum by (outcome) (loginmetrics_messages_total)", "outcome") == {
        "valid": truth.valid,
        "invalid": truth.invalid,
    }
    dead_letters = prometheus.values(
        "sum by (error_code) (loginmetrics_dead_letters_total)", "error_code"
    )
    assert dead_letters == dict(truth.invalid_codes)
    assert prometheus.values('sum(loginmetrics_batches_total{result="refused"})') == {None: 0}

    leader_only = " and on (instance) (loginmetrics_aggregator_leader == 1)"
    rate = prometheus.values("loginmetrics_window_error_rate" + leader_only)
    assert event["total_messages"] == complete["total_messages"] == total
    assert rate == {None: event["error_rate"]}
    assert event["error_rate"] == round(100 * truth.invalid / total, 2)
    assert prometheus.values("loginmetrics_window_messages" + leader_only) == {None: total}
    assert prometheus.values("loginmetrics_window_errors" + leader_only) == {None: truth.invalid}
    assert prometheus.values("sum(loginmetrics_partitions_paused)") == {None: 0}


def exported(port: int) -> dict[str, str]:
    """Metric name -> type, as served at /metrics (a counter's name with its _total)."""
    text = http_get(f"http://127.0.0.1:{port}/metrics").decode()
    names = {}
    for family in text_string_to_metric_families(text):
        name = family.name + "_total" if family.type == "counter" else family.name
        names[name] = family.type
    return names


@pytest.mark.timeout(60)
def test_every_contract_metric_is_exported_by_its_job(
    kafka_bootstrap: str, redis_client: redis.Redis, pipeline: Pipeline
) -> None:
    # A dead letter and an applied batch, so that series with labels exist.
    stream = login_stream(count=200, users=50, invalid_every=10)
    produce(kafka_bootstrap, pipeline.input_topic, stream.messages)
    wait_for_messages(redis_client, pipeline.layout, len(stream.messages), timeout=30)
    ports = {WORKER_JOB: pipeline.worker_port, AGGREGATOR_JOB: pipeline.aggregator_port}
    wanted = {
        job: {m.name: m.kind for m in CONTRACT if job in m.jobs and m.name != "up"} for job in ports
    }

    def complete() -> bool:
        # Consumer lag comes with librdkafka's statistics, every few seconds.
        return all(wanted[job].items() <= exported(port).items() for job, port in ports.items())

    wait_until(complete, 20, "every contract metric")
    worker = exported(pipeline.worker_port)
    assert not {n for n in worker if n.startswith("loginmetrics_window_")}, "aggregator's only"
