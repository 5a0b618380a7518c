"""The HTTP API's query parameters: durations, moments and counts, each refused with a reason a
person can act on (the API answers it as a 400)."""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping
from datetime import UTC, datetime

from loginmetrics.aggregator.history import time_position

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_POSITION = re.compile(r"[0-9]{1,15}-[0-9]{1,19}")
_DURATION = re.compile(r"([0-9]{1,9})([smhd]?)")


class ParameterError(ValueError):
    """A query parameter the API cannot take; the message says which and why."""


def refuse_unknown(query: Mapping[str, str], known: Collection[str]) -> None:
    """A misspelt parameter would otherwise be ignored and the answer silently be another's."""
    unknown = sorted(set(query) - set(known))
    if unknown:
        allowed = ", ".join(sorted(known)) or "none"
        raise ParameterError(f"unknown parameter {unknown[0]!r} (this path takes: {allowed})")


def parse_duration(text: str, name: str) -> int:
    """Seconds of ``90s``, ``15m``, ``1h``, ``1d`` or a bare number of seconds."""
    match = _DURATION.fullmatch(text.strip())
    if match is None or int(match.group(1)) == 0:
        raise ParameterError(
            f"{name}={text!r} is not a duration: a positive whole number with s, m, h or d "
            "(90s, 15m, 1h, 1d)"
        )
    return int(match.group(1)) * UNITS[match.group(2) or "s"]


def duration_text(seconds: int) -> str:
    """The shortest way ``parse_duration`` reads back: 300 -> ``5m``."""
    for unit in ("d", "h", "m"):
        if seconds % UNITS[unit] == 0:
            return f"{seconds // UNITS[unit]}{unit}"
    return f"{seconds}s"


def parse_moment(text: str, name: str) -> float:
    """Epoch seconds of ``text``: epoch seconds themselves, or ISO-8601 (UTC when it names no
    offset, as every time loginmetrics writes)."""
    try:
        epoch = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(epoch) or epoch < 0:
            raise ParameterError(f"{name}={text!r} is not a time")
        return epoch
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ParameterError(
            f"{name}={text!r} is not a time: give ISO-8601 (2025-01-21T00:02:06, UTC unless it "
            "says otherwise) or epoch seconds"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def parse_since(text: str) -> str:
    """A history position: ``next_since`` as an earlier answer gave it (``<ms>-<seq>``, kept
    exact: several events share a millisecond), or a time as ``parse_moment`` reads it."""
    if _POSITION.fullmatch(text):
        return text
    return time_position(int(parse_moment(text, "since") * 1000))


def parse_count(text: str, name: str, most: int) -> int:
    if not re.fullmatch(r"[0-9]{1,9}", text) or not 1 <= int(text) <= most:
        raise ParameterError(f"{name}={text!r} must be a whole number from 1 to {most}")
    return int(text)
