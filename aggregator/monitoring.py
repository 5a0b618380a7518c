"""The aggregator's --metrics-port: its figures and its loop's probes, served from its own process
(``loginmetrics aggregate``; in ``run`` it is a pool child and the supervisor serves)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from loginmetrics.aggregator.metrics import aggregator_metrics
from loginmetrics.runtime.health import LoopProbe
from loginmetrics.runtime.http_probe import DEFAULT_METRICS_ADDRESS, process_monitoring


@contextmanager
def aggregator_monitoring(
    port: int | None, name: str, address: str = DEFAULT_METRICS_ADDRESS
) -> Iterator[LoopProbe]:
    """With a port: this aggregator's figures (its process's included) and probes served on
    ``address``:``port`` until the block ends; the loop beats on the probe it is given.
    Without one: a probe that does nothing."""
    with process_monitoring(port, name, aggregator_metrics().collectors(), address) as probe:
        yield probe
