"""The aggregator's ports: --metrics-port (its figures and its loop's probes, served from its own
process in ``loginmetrics aggregate``; in ``run`` the supervisor serves it) and --http-port (the
HTTP API and the live page, always served by the aggregator process, leader or standby)."""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import redis

from loginmetrics.aggregator.history import EventHistory
from loginmetrics.aggregator.http_api import ApiConfig, ApiSettings, HttpApi
from loginmetrics.aggregator.metrics import aggregator_metrics
from loginmetrics.aggregator.settings import AggregatorSettings
from loginmetrics.aggregator.status import PartitionSource, read_status, status_json
from loginmetrics.runtime.health import LoopProbe
from loginmetrics.runtime.http_probe import DEFAULT_METRICS_ADDRESS, process_monitoring
from loginmetrics.runtime.http_server import BoundedHttpServer
from loginmetrics.runtime.signals import EXIT_FATAL
from loginmetrics.window.ranges import RangeReader

logger = logging.getLogger(__name__)

# A status answer waits on Kafka's admin requests (seconds when the broker is slow); more
# threads than the probe server's two keep the page's other requests answered meanwhile.
API_ANSWER_THREADS = 4


@contextmanager
def aggregator_monitoring(
    port: int | None, name: str, address: str = DEFAULT_METRICS_ADDRESS
) -> Iterator[LoopProbe]:
    """With a port: this aggregator's figures (its process's included) and probes served on
    ``address``:``port`` until the block ends; the loop beats on the probe it is given.
    Without one: a probe that does nothing."""
    with process_monitoring(port, name, aggregator_metrics().collectors(), address) as probe:
        yield probe


@contextmanager
def http_api_serving(
    client: redis.Redis, settings: AggregatorSettings, api: ApiSettings, history: EventHistory
) -> Iterator[None]:
    """With ``api.port``: the API and the page served until the block ends, every answer read
    from Redis through ``client`` (redis-py's pool is shared safely between threads). A port
    that cannot be served stops the process with one ERROR line: no restart frees it."""
    if api.port is None:
        yield
        return
    layout = settings.layout
    answer = HttpApi(
        RangeReader(client, layout, max_values=settings.max_distribution_values),
        history,
        _status_reader(client, settings, api.partition_source),
        ApiConfig(
            window_lengths=settings.window_lengths,
            emit_interval_seconds=settings.emit_interval_seconds,
            bucket_seconds=layout.bucket_seconds,
            history_seconds=api.history_seconds,
            retention_seconds=layout.retention_seconds,
            max_distribution_values=settings.max_distribution_values,
            time_basis=layout.time_basis.value,
        ),
        redis_clock=lambda: _redis_time(client),
    )
    server = BoundedHttpServer(
        api.address, api.port, answer, name="api-http", answer_threads=API_ANSWER_THREADS
    )
    where = api.address or "every interface"
    try:
        server.start()
    except OSError as exc:
        logger.error(
            "cannot serve the HTTP API on %s port %d: %s; check --http-address and --http-port",
            where,
            api.port,
            exc,
        )
        sys.exit(EXIT_FATAL)
    logger.info(
        "serving the HTTP API and the live page on %s port %d (http://%s:%d/)",
        where,
        server.port,
        api.address or "localhost",
        server.port,
    )
    try:
        yield
    finally:
        server.close()


def _redis_time(client: redis.Redis) -> float:
    seconds, micros = client.time()
    return float(seconds) + float(micros) / 1_000_000


def _status_reader(
    client: redis.Redis,
    settings: AggregatorSettings,
    partition_source: Callable[[], PartitionSource] | None,
) -> Callable[[], Mapping[str, Any]]:
    """``status --output json`` as the API serves it; the Kafka side is built on the first
    request (not at startup: a broker away must not stop the aggregator) and kept."""
    if partition_source is None:
        raise ValueError(
            "the HTTP API's status needs the Kafka side (ApiSettings.partition_source)"
        )
    built: list[PartitionSource] = []
    lock = threading.Lock()

    def read() -> Mapping[str, Any]:
        with lock:
            if not built:
                built.append(partition_source())
        return status_json(read_status(client, built[0], settings.layout))

    return read
