"""The published metric events kept in Redis for the HTTP API: one capped stream per window prefix,
each entry one event, trimmed to the last ``--history`` seconds."""

from __future__ import annotations

from dataclasses import dataclass

import msgspec
import redis

from loginmetrics.aggregator.metric_event import MetricEvent, encode_metric_event
from loginmetrics.window import WindowLayout

DEFAULT_HISTORY_SECONDS = 24 * 3600
# Entries read per XRANGE while looking for one window length's events (the stream holds every
# length, interleaved): enough for an hour of three lengths every 10 s in one round trip.
PAGE = 1000
EVENT_FIELD = b"event"
WINDOW_FIELD = b"window_seconds"

# What XRANGE gives (redis-py types it loosely, with None for entries a trim removed mid-read,
# which only XREADGROUP's pending entries can show).
Entry = tuple[bytes, dict[bytes, bytes]]

_decode = msgspec.json.Decoder(MetricEvent).decode


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """Events of one window length, oldest first, and the stream position (``<ms>-<seq>``) of
    the next one to read, or None when nothing more was published yet. Several events can share
    a millisecond (each window length's of one tick), so a time alone would not do."""

    events: list[MetricEvent]
    next_position: str | None


class EventHistory:
    """The leader appends every event it publishes; anyone reads them back by window length."""

    def __init__(
        self,
        client: redis.Redis,
        layout: WindowLayout,
        history_seconds: int = DEFAULT_HISTORY_SECONDS,
    ) -> None:
        if history_seconds < 1:
            raise ValueError(f"history must be at least 1 s, got {history_seconds}")
        self._client = client
        self._key = layout.history_key
        self._history_ms = history_seconds * 1000

    def append(self, event: MetricEvent) -> None:
        """Add ``event``; entries older than the history go in the same XADD. Raises the Redis
        error when Redis does not answer (the event itself is already published)."""
        seconds, micros = self._client.time()
        now_ms = int(seconds) * 1000 + int(micros) // 1000
        # The entry id is Redis's own clock at the append (XADD '*'), so MINID trims by the
        # same clock. approximate ('~') lets Redis drop whole stream nodes only: cheap, and it
        # keeps at most a node (100 entries) more than asked.
        self._client.xadd(
            self._key,
            {WINDOW_FIELD: event.window_seconds, EVENT_FIELD: encode_metric_event(event)},
            minid=now_ms - self._history_ms,
            approximate=True,
        )

    def since(self, window_seconds: int, position: str, limit: int) -> HistoryPage:
        """At most ``limit`` events of windows ``window_seconds`` long, oldest first, from
        ``position`` on: a stream position ``<ms>-<seq>`` (a page's ``next_position``) or
        ``time_position`` of a time."""
        events: list[MetricEvent] = []
        start = position
        while True:
            entries: list[Entry] = self._client.xrange(self._key, min=start, max="+", count=PAGE)  # type: ignore[assignment]
            for entry_id, fields in entries:
                if int(fields[WINDOW_FIELD]) != window_seconds:
                    continue
                if len(events) == limit:
                    return HistoryPage(events, entry_id.decode())
                events.append(_decode(fields[EVENT_FIELD]))
            if len(entries) < PAGE:
                return HistoryPage(events, None)
            start = "(" + entries[-1][0].decode()  # exclusive: after the last entry read


def time_position(epoch_ms: int) -> str:
    """The stream position of the first event published at or after ``epoch_ms``."""
    return f"{max(0, epoch_ms)}-0"
