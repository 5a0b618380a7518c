"""The aggregator's HTTP API and live page (``--http-port``): any range of the window, the
published history, the pipeline's status, and the page that charts them."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from importlib import resources
from typing import Any, Protocol

import msgspec
import redis

from loginmetrics.aggregator.api_parameters import (
    ParameterError,
    duration_text,
    parse_count,
    parse_duration,
    parse_moment,
    parse_since,
    refuse_unknown,
)
from loginmetrics.aggregator.history import DEFAULT_HISTORY_SECONDS, EventHistory, time_position
from loginmetrics.aggregator.metric_event import (
    DEFAULT_MAX_DISTRIBUTION_VALUES,
    build_metric_event,
    encode_metric_event,
    epoch_iso,
)
from loginmetrics.aggregator.status import PartitionSource
from loginmetrics.runtime.http_probe import DEFAULT_METRICS_ADDRESS
from loginmetrics.runtime.http_server import JSON, Reply, Request, error_reply
from loginmetrics.window import WindowTotals
from loginmetrics.window.errors import BadRangeError

logger = logging.getLogger(__name__)

# As --metrics-address: every interface, so the port is reached from outside a container or pod.
DEFAULT_HTTP_ADDRESS = DEFAULT_METRICS_ADDRESS
# /api/v1/events without since: the last hour, what the page charts.
DEFAULT_EVENTS_SECONDS = 3600
DEFAULT_EVENTS_LIMIT = 1000
MAX_EVENTS_LIMIT = 10_000
# The page's files, served from memory; no build step made them.
PAGE_FILES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
}
# Answers change every emit interval: a browser or proxy must ask again.
NO_STORE = (("Cache-Control", "no-store"),)
ROUNDED_HEADER = "X-Loginmetrics-Rounded"
REQUESTED_HEADER = "X-Loginmetrics-Requested"


@dataclass(frozen=True, slots=True)
class ApiSettings:
    """How the API is served (built by the CLI, pickled to the aggregator child in ``run``)."""

    port: int | None = None  # None: no API, no page
    address: str = DEFAULT_HTTP_ADDRESS
    # How long published events are kept for /api/v1/events (the leader keeps them always).
    history_seconds: int = DEFAULT_HISTORY_SECONDS
    # Builds the Kafka side of /api/v1/status (the input topic's partitions and the group); the
    # command sets it, as it knows the topic and group.
    partition_source: Callable[[], PartitionSource] | None = None


@dataclass(frozen=True, slots=True)
class ApiConfig:
    """What ``/api/v1/config`` tells the page: the window lengths it may select, and how often
    a new event appears."""

    window_lengths: tuple[int, ...]  # seconds, as published, shortest first
    emit_interval_seconds: float
    bucket_seconds: int
    history_seconds: int
    retention_seconds: int
    max_distribution_values: int = DEFAULT_MAX_DISTRIBUTION_VALUES
    time_basis: str = "processing"


class RangeResult(Protocol):
    """A range's totals and what was asked (``window.ranges.RangeAnswer``)."""

    @property
    def totals(self) -> WindowTotals: ...

    @property
    def requested_start(self) -> int: ...

    @property
    def requested_end(self) -> int: ...

    @property
    def rounded(self) -> bool: ...


class RangeSource(Protocol):
    """Reads any range still kept (``window.ranges.RangeReader``); ``BadRangeError`` says why
    one cannot be read."""

    def read(self, start: int, end: int) -> RangeResult: ...


class HttpApi:
    """The ``Answer`` of the API's ``BoundedHttpServer``: one method per path, each a pure
    function of its parameters and what Redis (and for the status, Kafka) says."""

    def __init__(
        self,
        ranges: RangeSource,
        history: EventHistory,
        status: Callable[[], Mapping[str, Any]],
        config: ApiConfig,
        redis_clock: Callable[[], float],
    ) -> None:
        self._ranges = ranges
        self._history = history
        self._status = status
        self._config = config
        self._clock = redis_clock
        self._page = {path: _page_file(name) for path, (name, _) in PAGE_FILES.items()}
        self._routes: dict[str, Callable[[Mapping[str, str]], Reply]] = {
            "/api/v1/window": self.window,
            "/api/v1/events": self.events,
            "/api/v1/status": self.status,
            "/api/v1/config": self.configuration,
        }

    def __call__(self, request: Request) -> Reply:
        if request.path in PAGE_FILES:
            return Reply(HTTPStatus.OK, PAGE_FILES[request.path][1], self._page[request.path])
        route = self._routes.get(request.path)
        if route is None:
            return error_reply(HTTPStatus.NOT_FOUND, f"no such path: {request.path}")
        try:
            return route(request.query)
        except ParameterError as exc:
            return error_reply(HTTPStatus.BAD_REQUEST, str(exc))
        except redis.RedisError as exc:
            # Not now, not a bug: the caller may ask again (the page does, every interval).
            logger.warning("%s: Redis did not answer: %s", request.path, exc)
            return error_reply(HTTPStatus.SERVICE_UNAVAILABLE, f"Redis did not answer: {exc}")

    def window(self, query: Mapping[str, str]) -> Reply:
        """The metric event of ``last=15m`` (ending at the last complete bucket) or of
        ``from=&to=``; whether the range was rounded to the buckets kept is in headers, so the
        body is exactly what a ``metric-event`` consumer parses."""
        refuse_unknown(query, {"last", "from", "to"})
        if "last" in query:
            if "from" in query or "to" in query:
                raise ParameterError("give either last, or from and to, not both")
            seconds = parse_duration(query["last"], "last")
            end = self._last_complete_bucket_end()
            start = end - seconds
        elif "from" in query and "to" in query:
            start = math.floor(parse_moment(query["from"], "from"))
            end = math.ceil(parse_moment(query["to"], "to"))
        else:
            raise ParameterError(
                "give last (e.g. last=15m) or from and to (ISO-8601 UTC or epoch seconds)"
            )
        try:
            answer = self._ranges.read(start, end)
        except BadRangeError as exc:
            raise ParameterError(str(exc)) from exc
        event = build_metric_event(
            answer.totals,
            datetime.now(UTC),
            self._config.bucket_seconds,
            self._config.max_distribution_values,
            time_basis=self._config.time_basis,
        )
        headers = (
            (ROUNDED_HEADER, "true" if answer.rounded else "false"),
            (
                REQUESTED_HEADER,
                f"{epoch_iso(answer.requested_start)}/{epoch_iso(answer.requested_end)}",
            ),
        )
        return Reply(HTTPStatus.OK, JSON, encode_metric_event(event), NO_STORE + headers)

    def events(self, query: Mapping[str, str]) -> Reply:
        """The published events of one window length since a time, oldest first."""
        refuse_unknown(query, {"window", "since", "limit"})
        lengths = self._config.window_lengths
        window = parse_duration(query["window"], "window") if "window" in query else lengths[0]
        if window not in lengths:
            raise ParameterError(
                f"no events of {duration_text(window)} windows are published; the configured "
                f"lengths are {', '.join(duration_text(n) for n in lengths)}"
            )
        if "since" in query:
            since = parse_since(query["since"])
        else:
            since = time_position(int((self._clock() - DEFAULT_EVENTS_SECONDS) * 1000))
        limit = parse_count(
            query.get("limit", str(DEFAULT_EVENTS_LIMIT)), "limit", MAX_EVENTS_LIMIT
        )
        page = self._history.since(window, since, limit)
        body = {
            "window_seconds": window,
            "events": page.events,
            # Pass as since for the events after these; null: there are none yet.
            "next_since": page.next_position,
        }
        return Reply(HTTPStatus.OK, JSON, msgspec.json.encode(body), NO_STORE)

    def status(self, query: Mapping[str, str]) -> Reply:
        """What ``loginmetrics status --output json`` shows."""
        refuse_unknown(query, set())
        try:
            report = self._status()
        except redis.RedisError:
            raise
        except Exception as exc:
            # The Kafka side is the composition root's (the CLI's raises click's exceptions);
            # whatever it raises, the broker did not answer as asked: not now, not a bug.
            logger.warning("/api/v1/status: Kafka did not answer: %s", exc)
            return error_reply(HTTPStatus.SERVICE_UNAVAILABLE, f"Kafka did not answer: {exc}")
        return Reply(HTTPStatus.OK, JSON, json.dumps(report).encode(), NO_STORE)

    def configuration(self, query: Mapping[str, str]) -> Reply:
        refuse_unknown(query, set())
        return Reply(HTTPStatus.OK, JSON, json.dumps(asdict(self._config)).encode(), NO_STORE)

    def _last_complete_bucket_end(self) -> int:
        step = self._config.bucket_seconds
        return int(self._clock()) // step * step


def _page_file(name: str) -> bytes:
    return resources.files("loginmetrics.aggregator").joinpath("page", name).read_bytes()
