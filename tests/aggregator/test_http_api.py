"""The aggregator's HTTP API over fakeredis: each path answers what it documents, bad parameters
get a 400 naming the reason, unknown paths a 404, Redis or Kafka away a 503, never a traceback."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

import fakeredis
import pytest
import redis

from loginmetrics.aggregator.history import EventHistory
from loginmetrics.aggregator.http_api import ApiConfig, HttpApi
from loginmetrics.aggregator.lease import AggregatorLease
from loginmetrics.aggregator.metric_event import MetricEvent, build_metric_event
from loginmetrics.aggregator.partition_positions import GroupMembers
from loginmetrics.aggregator.status import read_status, status_json
from loginmetrics.runtime.http_server import BoundedHttpServer, Reply, Request, parse_head
from loginmetrics.window import WindowLayout, WindowTotals
from loginmetrics.window.errors import RangeOutOfRetentionError
from loginmetrics.window.layout_record import Role, record_layout

LAYOUT = WindowLayout(prefix="api-test", window_seconds=300)
NOW = 1_737_420_960  # a whole minute: bucket and window ends are round
CONFIG = ApiConfig(
    window_lengths=(60, 300),
    emit_interval_seconds=10,
    bucket_seconds=1,
    history_seconds=3600,
    retention_seconds=24 * 3600,
)


@dataclass(frozen=True, slots=True)
class Answered:
    totals: WindowTotals
    requested_start: int
    requested_end: int
    rounded: bool


@dataclass
class FakeRanges:
    """A range reader that keeps what it was asked and answers 4 logins a second."""

    asked: list[tuple[int, int]] = field(default_factory=list)
    failure: Exception | None = None

    def read(self, start: int, end: int) -> Answered:
        if self.failure is not None:
            raise self.failure
        self.asked.append((start, end))
        seconds = end - start
        totals = WindowTotals(
            start, end, 4 * seconds, seconds, 3, 2, {"android": 4 * seconds}, {}, {}, start
        )
        return Answered(totals, start, end, rounded=start % 60 != 0)


class FakeKafka:
    topic, group = "logins", "g"

    def partitions(self) -> list[int]:
        return [0, 1]

    def topic_id(self) -> str:
        return "topic-1"

    def watermarks(self, partitions: list[int]) -> dict[int, tuple[int, int]]:
        return {p: (0, 100) for p in partitions}

    def committed(self, partitions: list[int]) -> dict[int, int | None]:
        return dict.fromkeys(partitions)

    def members(self) -> GroupMembers:
        return GroupMembers("stable", ("worker-1 on host",))


@pytest.fixture
def client() -> Iterator[fakeredis.FakeRedis]:
    window = fakeredis.FakeRedis()
    yield window
    window.close()


@pytest.fixture
def ranges() -> FakeRanges:
    return FakeRanges()


@pytest.fixture
def api(client: fakeredis.FakeRedis, ranges: FakeRanges) -> HttpApi:
    return HttpApi(
        ranges,
        EventHistory(client, LAYOUT, history_seconds=3600),
        lambda: status_json(read_status(client, FakeKafka(), LAYOUT)),
        CONFIG,
        redis_clock=lambda: NOW + 0.4,
    )


def get(api: HttpApi, path: str) -> Reply:
    """What the server would hand ``api`` for ``GET path`` (parsed as the server parses it)."""
    request: Request = parse_head(f"GET {path} HTTP/1.1\r\nHost: x".encode())
    return api(request)


def body(reply: Reply) -> Any:
    return json.loads(reply.body)


def event(window_seconds: int, end: int, users: int) -> MetricEvent:
    totals = WindowTotals(end - window_seconds, end, users, 0, users, users, {"iOS": users})
    return build_metric_event(totals, datetime.fromtimestamp(end, UTC), 1)


def test_last_reads_the_range_ending_at_the_last_complete_bucket(
    api: HttpApi, ranges: FakeRanges
) -> None:
    reply = get(api, "/api/v1/window?last=15m")
    assert reply.status == HTTPStatus.OK
    assert ranges.asked == [(NOW - 900, NOW)]
    answer = body(reply)
    # Exactly a metric event: what a metric-event consumer parses.
    assert answer["window_seconds"] == 900
    assert answer["window_size"] == 3600
    assert answer["total_messages"] == 4500
    assert answer["error_rate"] == 20.0
    assert answer["device_distribution"] == {"android": 3600}
    headers = dict(reply.headers)
    assert headers["X-Loginmetrics-Rounded"] == "false"
    assert headers["Cache-Control"] == "no-store"


def test_from_and_to_take_iso_or_epoch_and_say_when_rounded(
    api: HttpApi, ranges: FakeRanges
) -> None:
    reply = get(api, "/api/v1/window?from=2025-01-21T00:00:30&to=1737418200")
    assert reply.status == HTTPStatus.OK
    assert ranges.asked == [(1737417630, 1737418200)]
    headers = dict(reply.headers)
    assert headers["X-Loginmetrics-Rounded"] == "true"
    assert headers["X-Loginmetrics-Requested"] == (
        "2025-01-21T00:00:30.000000/2025-01-21T00:10:00.000000"
    )
    offset = get(api, "/api/v1/window?from=2025-01-21T01:00:30%2B01:00&to=1737418200")
    assert ranges.asked[-1] == (1737417630, 1737418200), "an offset is honoured"
    assert offset.status == HTTPStatus.OK


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/api/v1/window", "give last (e.g. last=15m) or from and to"),
        ("/api/v1/window?last=15x", "last='15x' is not a duration"),
        ("/api/v1/window?last=0m", "last='0m' is not a duration"),
        ("/api/v1/window?last=-5m", "last='-5m' is not a duration"),
        ("/api/v1/window?last=15m&from=1", "not both"),
        ("/api/v1/window?from=1737417630", "give last (e.g. last=15m) or from and to"),
        ("/api/v1/window?from=yesterday&to=1737418200", "from='yesterday' is not a time"),
        ("/api/v1/window?from=1&to=nan", "to='nan' is not a time"),
        ("/api/v1/window?lats=15m", "unknown parameter 'lats'"),
        ("/api/v1/events?window=7m", "no events of 7m windows are published"),
        ("/api/v1/events?window=5m&limit=0", "limit='0' must be a whole number from 1 to"),
        ("/api/v1/events?window=5m&limit=99999", "limit='99999' must be a whole number"),
        ("/api/v1/events?since=soon", "since='soon' is not a time"),
        ("/api/v1/status?verbose=1", "unknown parameter 'verbose' (this path takes: none)"),
    ],
)
def test_bad_parameters_get_a_400_with_the_reason(api: HttpApi, path: str, reason: str) -> None:
    reply = get(api, path)
    assert reply.status == HTTPStatus.BAD_REQUEST
    assert reply.content_type == "application/json"
    assert reason in body(reply)["error"]


def test_a_range_the_store_cannot_answer_is_a_400_with_its_reason(
    api: HttpApi, ranges: FakeRanges
) -> None:
    ranges.failure = RangeOutOfRetentionError("only the last 86400 s are kept")
    reply = get(api, "/api/v1/window?last=2d")
    assert reply.status == HTTPStatus.BAD_REQUEST
    assert body(reply) == {"error": "only the last 86400 s are kept"}


def test_redis_away_is_a_503_with_the_reason(api: HttpApi, ranges: FakeRanges) -> None:
    ranges.failure = redis.ConnectionError("Connection refused")
    reply = get(api, "/api/v1/window?last=1m")
    assert reply.status == HTTPStatus.SERVICE_UNAVAILABLE
    assert body(reply) == {"error": "Redis did not answer: Connection refused"}


def test_kafka_away_makes_the_status_a_503(client: fakeredis.FakeRedis) -> None:
    def unreachable() -> dict[str, Any]:
        raise RuntimeError("Kafka at localhost:9092 not reachable")

    api = HttpApi(FakeRanges(), EventHistory(client, LAYOUT), unreachable, CONFIG, lambda: NOW)
    reply = get(api, "/api/v1/status")
    assert reply.status == HTTPStatus.SERVICE_UNAVAILABLE
    assert "not reachable" in body(reply)["error"]


def test_unknown_paths_are_404(api: HttpApi) -> None:
    for path in ("/api/v1/windows", "/api/v2/window", "/index.html", "/api/v1/window/"):
        reply = get(api, path)
        assert reply.status == HTTPStatus.NOT_FOUND, path
        assert body(reply) == {"error": f"no such path: {path}"}


def test_events_returns_one_window_length_since_a_time_oldest_first(
    api: HttpApi, client: fakeredis.FakeRedis
) -> None:
    history = EventHistory(client, LAYOUT, history_seconds=3600)
    for tick in range(5):
        history.append(event(300, NOW + 10 * tick, users=tick))
        history.append(event(60, NOW + 10 * tick, users=100 + tick))
    everything = body(get(api, "/api/v1/events?window=5m&since=0"))
    assert everything["window_seconds"] == 300
    assert [e["active_users"] for e in everything["events"]] == [0, 1, 2, 3, 4]
    assert everything["next_since"] is None

    first = body(get(api, "/api/v1/events?window=60s&since=0&limit=2"))
    assert [e["active_users"] for e in first["events"]] == [100, 101]
    rest = body(get(api, f"/api/v1/events?window=1m&since={first['next_since']}"))
    assert [e["active_users"] for e in rest["events"]] == [102, 103, 104], "no gap, no repeat"

    now = client.time()[0]
    assert body(get(api, f"/api/v1/events?window=5m&since={now + 5}"))["events"] == []


def test_events_without_window_are_the_first_configured_length(
    client: fakeredis.FakeRedis,
) -> None:
    history = EventHistory(client, LAYOUT)
    history.append(event(60, NOW, users=7))
    now = float(client.time()[0])
    api = HttpApi(FakeRanges(), history, dict, CONFIG, lambda: now)
    answer = body(get(api, "/api/v1/events"))  # the last hour, by the Redis clock
    assert answer["window_seconds"] == 60
    assert [e["active_users"] for e in answer["events"]] == [7]


def test_the_history_is_trimmed_to_its_length(client: fakeredis.FakeRedis) -> None:
    history = EventHistory(client, LAYOUT, history_seconds=1)
    for second in range(1000, 1300):  # events from 1970, far older than a second
        client.xadd(LAYOUT.history_key, {"window_seconds": 60, "event": b"{}"}, id=f"{second}-0")
    history.append(event(60, NOW, users=1))
    kept: Any = client.xrange(LAYOUT.history_key)
    # MINID ~ drops whole stream nodes (100 entries each, Redis's default): cheap, and never
    # more than a node's worth of old entries stays.
    assert len(kept) <= 101
    assert kept[-1][1][b"event"] != b"{}", "the new event is kept"


def test_status_is_what_loginmetrics_status_shows(
    api: HttpApi, client: fakeredis.FakeRedis
) -> None:
    record_layout(client, LAYOUT, Role.AGGREGATOR)
    lease = AggregatorLease(client, LAYOUT, 15, token="host:1:abc")
    assert lease.acquire()
    reply = get(api, "/api/v1/status")
    assert reply.status == HTTPStatus.OK
    status = body(reply)
    assert status["aggregator"]["leader"] == "host:1:abc"
    assert status["group"] == {"id": "g", "state": "stable", "members": ["worker-1 on host"]}
    assert status["lag"]["messages"] == 200
    assert status["layout"]["prefix"] == "api-test"


def test_config_lists_the_window_lengths_to_select(api: HttpApi) -> None:
    config = body(get(api, "/api/v1/config"))
    assert config["window_lengths"] == [60, 300]
    assert config["emit_interval_seconds"] == 10


def test_the_page_and_its_files_are_served_with_their_types(api: HttpApi) -> None:
    page = get(api, "/")
    assert page.status == HTTPStatus.OK
    assert page.content_type.startswith("text/html")
    assert b'src="app.js"' in page.body
    assert b'data-metric="active_users"' in page.body
    assert get(api, "/app.js").content_type.startswith("text/javascript")
    assert get(api, "/style.css").content_type.startswith("text/css")
    # Nothing is fetched from another host: the page works offline.
    for path in ("/", "/app.js", "/style.css"):
        assert b"http://" not in get(api, path).body.replace(b"http://www.w3.org/2000/svg", b"")
        assert b"https://" not in get(api, path).body


def test_over_the_wire_a_repeated_parameter_is_a_400_and_headers_arrive(api: HttpApi) -> None:
    server = BoundedHttpServer("127.0.0.1", 0, api, name="api-test")
    server.start()
    try:
        url = f"http://127.0.0.1:{server.port}"
        with urllib.request.urlopen(f"{url}/api/v1/window?last=1m", timeout=5) as answer:
            assert answer.headers["X-Loginmetrics-Rounded"] == "false"
            assert json.loads(answer.read())["window_seconds"] == 60
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{url}/api/v1/window?last=1m&last=5m", timeout=5)
        assert refused.value.code == 400
        assert json.loads(refused.value.read()) == {
            "error": "parameter 'last' given more than once"
        }
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
            raw.sendall(b"GET /api/v1/nothing HTTP/1.0\r\n\r\n")
            assert raw.recv(100).startswith(b"HTTP/1.0 404 ")
    finally:
        server.close()
