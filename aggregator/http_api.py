"""The aggregator's HTTP API and live page (``--http-port``): any range of the window, the
published history, the pipeline's status, and the page that charts them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from loginmetrics.aggregator.history import DEFAULT_HISTORY_SECONDS
from loginmetrics.aggregator.status import PartitionSource
from loginmetrics.runtime.http_probe import DEFAULT_METRICS_ADDRESS

# As --metrics-address: every interface, so the port is reached from outside a container or pod.
DEFAULT_HTTP_ADDRESS = DEFAULT_METRICS_ADDRESS


@dataclass(frozen=True, slots=True)
class ApiSettings:
    """How the API is served (built by the CLI, pickled to the aggregator child in ``run``)."""

    port: int | None = None  # None: no API, no page
    address: str = DEFAULT_HTTP_ADDRESS
    # How long published events are kept for /api/v1/events (the leader keeps them always).
    history_seconds: int = DEFAULT_HISTORY_SECONDS
    # Builds the Kafka side of /api/v1/status (the input topic's partitions and the group);
    # None: the status shows the Redis side only.
    partition_source: Callable[[], PartitionSource] | None = None
