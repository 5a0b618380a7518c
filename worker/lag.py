"""Consumer lag of a worker's owned input partitions, from librdkafka's statistics: emitted
every ``statistics.interval.ms`` from within consume(), so the batch loop pays nothing else."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

logger = logging.getLogger(__name__)

STATISTICS_INTERVAL_MS = 5_000
# librdkafka's fetch state of a partition this consumer fetches (owned and not stopped).
FETCHING = "active"


def partition_lags(statistics: Mapping[str, Any], topic: str) -> dict[int, int]:
    """Lag of every partition of ``topic`` this consumer fetches: messages up to the end of the
    partition (the last stable offset under read_committed) after the offset committed for the
    group, which the worker commits once a batch is applied; after the consumed position while
    nothing is committed yet. Partitions whose lag librdkafka does not know yet are left out."""
    partitions = statistics.get("topics", {}).get(topic, {}).get("partitions", {})
    lags = {}
    for figures in partitions.values():
        partition = figures.get("partition", -1)
        if partition < 0 or figures.get("fetch_state") != FETCHING:
            continue  # -1 is librdkafka's internal "unassigned" partition
        lag = figures.get("consumer_lag", -1)
        if lag < 0:
            lag = figures.get("consumer_lag_stored", -1)
        if lag >= 0:
            lags[partition] = lag
    return lags


def lag_statistics(topic: str, report: Callable[[str, dict[int, int]], None]) -> dict[str, Any]:
    """Consumer settings that make librdkafka call ``report(topic, lags)`` periodically."""

    def on_statistics(document: str) -> None:
        try:
            report(topic, partition_lags(json.loads(document), topic))
        except (ValueError, TypeError, AttributeError) as exc:  # never break the consume loop
            logger.debug("unreadable librdkafka statistics: %s", exc)

    return {"statistics.interval.ms": STATISTICS_INTERVAL_MS, "stats_cb": on_statistics}
