"""The metric event published for a window (spec section 3), built from window totals."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import msgspec

from loginmetrics.window import WindowTotals
from loginmetrics.window.layout import OTHER_VALUES

# Most values an event lists per distribution unless --max-distribution-values says otherwise.
DEFAULT_MAX_DISTRIBUTION_VALUES = 100
# Most bytes of an encoded event, far below the producer's 1 MB message.max.bytes. Only long
# values could reach it (100 values x 3 distributions x 256 bytes, escaped, is well under);
# then fewer values are listed, so that no traffic can make an event the broker refuses.
METRIC_EVENT_MAX_BYTES = 256 * 1024


class MetricEvent(msgspec.Struct, frozen=True):
    """One ``metric-event`` message; field order is the JSON order."""

    timestamp: str
    window_start: str
    window_end: str
    window_seconds: int
    window_size: int
    active_users: int
    unique_ips: int
    processing_rate: float
    error_rate: float
    device_distribution: dict[str, int]
    version_distribution: dict[str, int]
    location_distribution: dict[str, int]
    total_messages: int
    total_errors: int
    # Which time put the messages in this window (processing or event); in event time, the
    # global watermark when it was emitted, and its revision: 0 first, one more each time late
    # messages changed it (the newest revision of a window end is its truth).
    time_basis: str = "processing"
    watermark: str | None = None
    revision: int = 0


@dataclass(frozen=True, slots=True)
class EventTimeStamp:
    """What an event-time metric event says of its emission."""

    watermark: float  # the global watermark (epoch seconds) when it was emitted
    revision: int = 0


def utc_iso(moment: datetime) -> str:
    """UTC ISO-8601 without an offset, always with microseconds: ``2025-01-21T00:02:06.015516``.

    A naive ``moment`` is taken to be UTC already.
    """
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.isoformat(timespec="microseconds")


def epoch_iso(epoch_seconds: int) -> str:
    return utc_iso(datetime.fromtimestamp(epoch_seconds, UTC))


def by_count(
    distribution: Mapping[str, int], max_values: int = DEFAULT_MAX_DISTRIBUTION_VALUES
) -> dict[str, int]:
    """Largest count first, names alphabetically among equal counts; at most ``max_values``
    values, the others (and any ``OTHER_VALUES`` already there) summed under ``OTHER_VALUES``,
    last. The sum never changes."""
    ranked = sorted(
        ((name, n) for name, n in distribution.items() if name != OTHER_VALUES),
        key=lambda item: (-item[1], item[0]),
    )
    listed = dict(ranked[:max_values])
    other = sum(distribution.values()) - sum(listed.values())
    if other:
        listed[OTHER_VALUES] = other
    return listed


def build_metric_event(
    totals: WindowTotals,
    built_at: datetime,
    bucket_seconds: int,
    max_values: int = DEFAULT_MAX_DISTRIBUTION_VALUES,
    *,
    time_basis: str = "processing",
    event_time: EventTimeStamp | None = None,
) -> MetricEvent:
    """The metric event of the window ``totals`` describes, built at ``built_at``.

    ``processing_rate`` divides by the covered part of the window, from the start of the first
    bucket that saw a message to the window end (at least one bucket), so a window that only
    started filling a minute ago is not diluted by the empty minutes before it.

    Each distribution lists at most ``max_values`` values, fewer if the encoded event would
    exceed ``METRIC_EVENT_MAX_BYTES``; the rest is summed under ``OTHER_VALUES``.
    """
    event = _metric_event(totals, built_at, bucket_seconds, max_values)
    while max_values > 0 and len(encode_metric_event(event)) > METRIC_EVENT_MAX_BYTES:
        max_values //= 2
        event = _metric_event(totals, built_at, bucket_seconds, max_values)
    if event_time is None:
        return msgspec.structs.replace(event, time_basis=time_basis)
    return msgspec.structs.replace(
        event,
        time_basis="event",
        watermark=utc_iso(datetime.fromtimestamp(event_time.watermark, UTC)),
        revision=event_time.revision,
    )


def _metric_event(
    totals: WindowTotals, built_at: datetime, bucket_seconds: int, max_values: int
) -> MetricEvent:
    total = totals.total_messages
    if totals.first_active_bucket is None or total == 0:
        processing_rate = 0.0
        error_rate = 0.0
    else:
        covered = max(totals.end - totals.first_active_bucket, bucket_seconds)
        processing_rate = round(total / covered, 2)
        error_rate = round(100 * totals.invalid / total, 2)
    return MetricEvent(
        timestamp=utc_iso(built_at),
        window_start=epoch_iso(totals.start),
        window_end=epoch_iso(totals.end),
        window_seconds=totals.end - totals.start,
        window_size=totals.valid,
        # HyperLogLog estimates (0.81 % standard error) can exceed the valid messages they
        # count, 131 users in 130 messages; a distinct count never can.
        active_users=min(totals.active_users, totals.valid),
        unique_ips=min(totals.unique_ips, totals.valid),
        processing_rate=processing_rate,
        error_rate=error_rate,
        device_distribution=by_count(totals.devices, max_values),
        version_distribution=by_count(totals.versions, max_values),
        location_distribution=by_count(totals.locales, max_values),
        total_messages=total,
        total_errors=totals.invalid,
    )


_encode = msgspec.json.Encoder().encode


def encode_metric_event(event: MetricEvent) -> bytes:
    return _encode(event)
