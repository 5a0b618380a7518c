"""How ``loginmetrics print`` shows a message: compact JSON lines for pipes, indented coloured
JSON for people, and a table for metric events. Pure functions over the message bytes."""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any

import click
import msgspec

TOP = 5


class PayloadKind(Enum):
    JSON = "json"
    TEXT = "text"  # UTF-8, but not JSON
    BINARY = "binary"  # not UTF-8
    TOMBSTONE = "tombstone"  # no value at all


@dataclass(frozen=True, slots=True)
class Payload:
    kind: PayloadKind
    value: Any  # the parsed JSON, the text, the bytes, or None


_decode_json = msgspec.json.Decoder().decode
_encode_json = msgspec.json.Encoder().encode


def decode_payload(value: bytes | None) -> Payload:
    if value is None:
        return Payload(PayloadKind.TOMBSTONE, None)
    try:
        return Payload(PayloadKind.JSON, _decode_json(value))
    except (msgspec.DecodeError, RecursionError):
        pass
    try:
        return Payload(PayloadKind.TEXT, value.decode("utf-8"))
    except UnicodeDecodeError:
        return Payload(PayloadKind.BINARY, value)


def compact(payload: Payload) -> str:
    """One JSON document on one line; what is not JSON is wrapped in an object whose one
    ``$``-key says so, so that every line still parses (``jq 'select(has("$text"))'``)."""
    if payload.kind is PayloadKind.JSON:
        return _encode_json(payload.value).decode()
    return _encode_json(_marked(payload)).decode()


def _marked(payload: Payload) -> dict[str, Any]:
    if payload.kind is PayloadKind.TEXT:
        return {"$text": payload.value}
    if payload.kind is PayloadKind.BINARY:
        return {"$base64": base64.b64encode(payload.value).decode("ascii")}
    return {"$tombstone": True}


# Tokens of json.dumps output: a string (a key when a colon follows), a number, a literal.
_TOKEN = re.compile(
    r'(?P<string>"(?:\\.|[^"\\])*")(?P<colon>\s*:)?'
    r"|(?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)"
    r"|(?P<literal>true|false|null)"
)


def pretty(payload: Payload) -> str:
    """Indented, coloured JSON; other payloads as text or base64 after a marker."""
    if payload.kind is PayloadKind.JSON:
        text = json.dumps(payload.value, indent=2, ensure_ascii=False)
        return _TOKEN.sub(_colour_token, text)
    if payload.kind is PayloadKind.TEXT:
        return click.style("(not JSON, text) ", fg="yellow") + str(payload.value)
    if payload.kind is PayloadKind.BINARY:
        encoded = base64.b64encode(payload.value).decode("ascii")
        return click.style("(not UTF-8, base64) ", fg="yellow") + encoded
    return click.style("(tombstone: the message has no value)", fg="yellow")


def _colour_token(match: re.Match[str]) -> str:
    if match["string"] is not None:
        if match["colon"] is not None:
            return click.style(match["string"], fg="blue", bold=True) + match["colon"]
        return click.style(match["string"], fg="green")
    if match["number"] is not None:
        return click.style(match["number"], fg="cyan")
    return click.style(match[0], fg="magenta")


def header(topic: str, partition: int, offset: int, timestamp_ms: int, key: bytes | None) -> str:
    """The line above a pretty message: where it is and when it was written."""
    parts = [f"{topic} [{partition}] @ {offset}"]
    if timestamp_ms > 0:
        parts.append(_utc(timestamp_ms / 1000))
    if key is not None:
        parts.append("key " + key.decode("utf-8", errors="backslashreplace"))
    return click.style("── " + " · ".join(parts) + " ──", dim=True)


def _utc(epoch_seconds: float) -> str:
    return datetime.fromtimestamp(epoch_seconds, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


class MetricEventView(msgspec.Struct):
    """The fields of a metric event the table shows (unknown fields are ignored)."""

    timestamp: str
    window_start: str
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
    window_end: str | None = None
    window_seconds: int | None = None


def as_metric_event(payload: Payload) -> MetricEventView | None:
    if payload.kind is not PayloadKind.JSON or not isinstance(payload.value, dict):
        return None
    try:
        return msgspec.convert(payload.value, MetricEventView)
    except msgspec.ValidationError:
        return None


def metric_table(event: MetricEventView) -> str:
    """A metric event for people: totals and rates, then the top 5 of each distribution."""
    window = f"{_clock(event.window_start)} → {_clock(event.window_end or '')}"
    if event.window_seconds is not None:
        window += f" ({event.window_seconds} s)"
    lines = [
        click.style(f"Window {window}", bold=True)
        + click.style(f"   built {_clock(event.timestamp)}", dim=True),
        f"  messages {event.total_messages:>10,}   valid {event.window_size:>10,}"
        f"   errors {event.total_errors:>8,} ({event.error_rate:.2f} %)",
        f"  rate {event.processing_rate:>10,.2f} msg/s   active users {event.active_users:>10,}"
        f"   unique IPs {event.unique_ips:>10,}",
        "",
    ]
    columns = [
        _top_column("Locales", event.location_distribution, event.window_size),
        _top_column("Devices", event.device_distribution, event.window_size),
        _top_column("Versions", event.version_distribution, event.window_size),
    ]
    width = 28
    for row in range(1 + TOP):
        cells = [column[row] if row < len(column) else "" for column in columns]
        line = "  " + "".join(cell.ljust(width) for cell in cells)
        lines.append(click.style(line.rstrip(), bold=True) if row == 0 else line.rstrip())
    return "\n".join(lines)


def _top_column(title: str, distribution: dict[str, int], valid: int) -> list[str]:
    ranked = sorted(distribution.items(), key=lambda item: (-item[1], item[0]))[:TOP]
    shown = len(distribution)
    rows = [f"{title} (top {TOP} of {shown})" if shown > TOP else f"{title} ({shown})"]
    for name, count in ranked:
        share = 100 * count / valid if valid else 0.0
        rows.append(f"{name[:10]:<10} {count:>8,} {share:5.1f}%")
    return rows


def _clock(iso: str) -> str:
    """``2025-01-21T00:02:06.015516`` as ``2025-01-21 00:02:06``; other text unchanged."""
    try:
        return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return iso or "?"
