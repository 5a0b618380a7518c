"""How `loginmetrics print` shows messages: JSON lines for pipes, pretty JSON, metric tables."""

from __future__ import annotations

import json
from typing import Any

import click
import pytest

from loginmetrics.cli.render import (
    Payload,
    PayloadKind,
    as_metric_event,
    compact,
    decode_payload,
    header,
    metric_table,
    pretty,
)

METRIC_EVENT: dict[str, Any] = {
    "timestamp": "2025-01-21T00:02:06.015516",
    "window_start": "2025-01-20T23:57:06.000000",
    "window_end": "2025-01-21T00:02:06.000000",
    "window_seconds": 300,
    "window_size": 43,
    "active_users": 41,
    "unique_ips": 42,
    "processing_rate": 1.95,
    "error_rate": 4.44,
    "device_distribution": {"android": 22, "iOS": 21},
    "version_distribution": {"2.3.0": 43},
    "location_distribution": {"TX": 9, "OH": 8, "CA": 7, "NY": 6, "LA": 5, "WA": 4, "FL": 4},
    "total_messages": 45,
    "total_errors": 2,
}


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (b'{"a": 1}', PayloadKind.JSON),
        (b"[1, 2]", PayloadKind.JSON),
        (b"null", PayloadKind.JSON),
        (b"hello, world", PayloadKind.TEXT),
        (b'{"cut": ', PayloadKind.TEXT),
        (b"\xff\xfe\x00", PayloadKind.BINARY),
        (None, PayloadKind.TOMBSTONE),
    ],
)
def test_payloads_are_told_apart(value: bytes | None, kind: PayloadKind) -> None:
    assert decode_payload(value).kind is kind


@pytest.mark.parametrize(
    ("value", "line"),
    [
        (b'{\n  "b": 1,\n  "a": [true, null, "x"]\n}', '{"b":1,"a":[true,null,"x"]}'),
        (b"plain text", '{"$text":"plain text"}'),
        (b"\xff\xfe", '{"$base64":"//4="}'),
        (None, '{"$tombstone":true}'),
    ],
)
def test_compact_output_is_one_json_document_per_line(value: bytes | None, line: str) -> None:
    text = compact(decode_payload(value))

    assert text == line
    assert "\n" not in text
    json.loads(text)


def test_pretty_json_is_indented_and_coloured_yet_the_same_document() -> None:
    document = {"name": "Zoë", "count": -1.5e3, "ok": True, "none": None, "list": [1, "a:b"]}

    shown = pretty(Payload(PayloadKind.JSON, document))

    assert "\x1b[" in shown
    plain = click.unstyle(shown)
    assert plain == json.dumps(document, indent=2, ensure_ascii=False)
    assert json.loads(plain) == document


def test_pretty_marks_what_is_not_json() -> None:
    assert click.unstyle(pretty(decode_payload(b"oops"))) == "(not JSON, text) oops"
    assert click.unstyle(pretty(decode_payload(b"\xff"))) == "(not UTF-8, base64) /w=="
    assert "tombstone" in click.unstyle(pretty(decode_payload(None)))


def test_header_says_where_and_when() -> None:
    line = click.unstyle(header("user-login", 3, 18211, 1_737_421_077_000, b"user-1"))

    assert "user-login [3] @ 18211" in line
    assert "2025-01-21 00:57:57 UTC" in line
    assert "key user-1" in line


def test_metric_table_shows_totals_rates_and_the_top_5() -> None:
    event = as_metric_event(decode_payload(json.dumps(METRIC_EVENT).encode()))
    assert event is not None

    table = click.unstyle(metric_table(event))

    assert "2025-01-20 23:57:06 → 2025-01-21 00:02:06 (300 s)" in table
    for figure in ("45", "43", "2 (4.44 %)", "1.95 msg/s", "41", "42"):
        assert figure in table
    assert "Locales (top 5 of 7)" in table
    for locale in ("TX", "OH", "CA", "NY", "LA"):
        assert locale in table
    assert "WA" not in table
    assert "FL" not in table
    assert "android" in table
    assert "51.2%" in table  # 22 of 43 valid messages
    assert "2.3.0" in table


def test_only_metric_events_become_tables() -> None:
    assert as_metric_event(decode_payload(b'{"user_id": "u"}')) is None
    assert as_metric_event(decode_payload(b"[1]")) is None
    assert as_metric_event(decode_payload(b"not json")) is None
    wrong = {**METRIC_EVENT, "total_messages": "many"}
    assert as_metric_event(decode_payload(json.dumps(wrong).encode())) is None


def test_a_metric_event_without_window_end_still_becomes_a_table() -> None:
    original = {k: v for k, v in METRIC_EVENT.items() if k not in ("window_end", "window_seconds")}

    event = as_metric_event(decode_payload(json.dumps(original).encode()))

    assert event is not None
    assert "45" in click.unstyle(metric_table(event))
