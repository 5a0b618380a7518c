"""The metric event published for a window (spec section 3), built from window totals."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

import msgspec

from loginmetrics.window import WindowTotals


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


def utc_iso(moment: datetime) -> str:
    """UTC ISO-8601 without an offset, always with microseconds: ``2025-01-21T00:02:06.015516``.

    A naive ``moment`` is taken to be UTC already.
    """
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.isoformat(timespec="microseconds")


def epoch_iso(epoch_seconds: int) -> str:
    return utc_iso(datetime.fromtimestamp(epoch_seconds, UTC))


def by_count(distribution: Mapping[str, int]) -> dict[str, int]:
    """Largest count first, names alphabetically among equal counts."""
    return dict(sorted(distribution.items(), key=lambda item: (-item[1], item[0])))


def build_metric_event(
    totals: WindowTotals, built_at: datetime, bucket_seconds: int
) -> MetricEvent:
    """The metric event of the window ``totals`` describes, built at ``built_at``.

    ``processing_rate`` divides by the covered part of the window, from the start of the first
    bucket that saw a message to the window end (at least one bucket), so a window that only
    started filling a minute ago is not diluted by the empty minutes before it.
    """
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
        active_users=totals.active_users,
        unique_ips=totals.unique_ips,
        processing_rate=processing_rate,
        error_rate=error_rate,
        device_distribution=by_count(totals.devices),
        version_distribution=by_count(totals.versions),
        location_distribution=by_count(totals.locales),
        total_messages=total,
        total_errors=totals.invalid,
    )


_encode = msgspec.json.Encoder().encode


def encode_metric_event(event: MetricEvent) -> bytes:
    return _encode(event)
