"""The window layout recorded in Redis by the first process that writes, and the check every
worker and aggregator runs against it at start: a process whose layout does not fit stops with
one ERROR naming both layouts (exit 78) instead of reading or writing the wrong buckets."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import redis

from loginmetrics.runtime.attempts import Attempts
from loginmetrics.runtime.backoff import Backoff
from loginmetrics.runtime.health import LoopProbe, NoProbe
from loginmetrics.runtime.redis_errors import FatalRedisError, judge
from loginmetrics.runtime.signals import EXIT_FATAL
from loginmetrics.window.layout import WindowLayout
from loginmetrics.window.scripts import load_lua

logger = logging.getLogger(__name__)

_RECORD = load_lua("loginmetrics.window", "record_layout.lua")

# Fields of the record (a hash at WindowLayout.layout_key).
PREFIX = "prefix"
BUCKET_SECONDS = "bucket_seconds"
TIME_BASIS = "time_basis"
KEPT_WINDOW_SECONDS = "kept_window_seconds"  # the workers' --window: what the bucket TTL covers
BUCKET_TTL_SECONDS = "bucket_ttl_seconds"  # for the operator: kept window + bucket + grace
AGGREGATOR_WINDOW_SECONDS = "aggregator_window_seconds"  # the last aggregator's --window


class Role(StrEnum):
    WORKER = "worker"  # writes buckets: decides how long they are kept
    AGGREGATOR = "aggregator"  # reads them: its window must fit in what is kept


class LayoutMismatchError(FatalRedisError):
    """This process's layout does not fit the one recorded in Redis. A ``FatalRedisError`` so
    that ``exit_when_fatal`` ends the process as it ends any state no retry can fix: one ERROR
    line, exit 78, not restarted by the supervisor."""


def _number(raw: str | None) -> int | None:
    return None if raw is None else int(raw)


@dataclass(frozen=True, slots=True)
class RecordedLayout:
    """The record as Redis holds it; None where a field is not recorded (yet)."""

    prefix: str | None = None
    bucket_seconds: int | None = None
    time_basis: str | None = None
    kept_window_seconds: int | None = None
    bucket_ttl_seconds: int | None = None
    aggregator_window_seconds: int | None = None
    # Every field as stored, also those a later version may add: what the compare-and-set sees.
    fields: dict[str, str] = field(default_factory=dict, compare=False)

    @classmethod
    def from_fields(cls, fields: Mapping[str, str]) -> RecordedLayout:
        return cls(
            prefix=fields.get(PREFIX),
            bucket_seconds=_number(fields.get(BUCKET_SECONDS)),
            time_basis=fields.get(TIME_BASIS),
            kept_window_seconds=_number(fields.get(KEPT_WINDOW_SECONDS)),
            bucket_ttl_seconds=_number(fields.get(BUCKET_TTL_SECONDS)),
            aggregator_window_seconds=_number(fields.get(AGGREGATOR_WINDOW_SECONDS)),
            fields=dict(fields),
        )

    @property
    def exists(self) -> bool:
        return bool(self.fields)

    def describe(self) -> str:
        if not self.exists:
            return "nothing recorded"

        def shown(value: object, unit: str = "") -> str:
            return "?" if value is None else f"{value}{unit}"

        kept = (
            f"buckets kept for a {shown(self.kept_window_seconds, ' s')} window "
            f"(keys live {shown(self.bucket_ttl_seconds, ' s')})"
            if self.kept_window_seconds is not None
            else "how long buckets are kept not recorded yet (no worker has started)"
        )
        read = (
            f", the last aggregator reads {self.aggregator_window_seconds} s windows"
            if self.aggregator_window_seconds is not None
            else ""
        )
        return (
            f"prefix {shown(self.prefix)}, {shown(self.bucket_seconds, ' s')} buckets, "
            f"{shown(self.time_basis)} time, {kept}{read}"
        )


def describe_own(layout: WindowLayout, role: Role) -> str:
    """This process's layout, worded like ``RecordedLayout.describe``."""
    shape = f"prefix {layout.prefix}, {layout.bucket_seconds} s buckets, {layout.time_basis} time"
    if role is Role.WORKER:
        return (
            f"{shape}, buckets kept for a {layout.window_seconds} s window "
            f"(keys live {layout.ttl_seconds} s)"
        )
    return f"{shape}, reads {layout.window_seconds} s windows"


@dataclass(frozen=True, slots=True)
class LayoutVerdict:
    """Why this process may not use the window (empty: it may), and what it records."""

    conflicts: tuple[str, ...]
    writes: dict[str, str]


def judge_layout(recorded: RecordedLayout, layout: WindowLayout, role: Role) -> LayoutVerdict:
    """The rules: every process agrees on the bucket length, time basis and prefix; workers on
    how long buckets are kept; an aggregator reads no longer a window than that. Whatever is
    not recorded yet, this process records."""
    conflicts: list[str] = []
    writes: dict[str, str] = {}
    shared: list[tuple[str, object, object, str]] = [
        (PREFIX, recorded.prefix, layout.prefix, "prefix {}"),
        (BUCKET_SECONDS, recorded.bucket_seconds, layout.bucket_seconds, "{} s buckets"),
        (TIME_BASIS, recorded.time_basis, str(layout.time_basis), "{} time"),
    ]
    for name, stored, own, wording in shared:
        if stored is None:
            writes[name] = str(own)
        elif stored != own:
            conflicts.append(f"{wording.format(stored)} recorded, {wording.format(own)} here")
    window = layout.window_seconds
    kept = recorded.kept_window_seconds
    if role is Role.WORKER:
        if kept is None:
            writes[KEPT_WINDOW_SECONDS] = str(window)
            writes[BUCKET_TTL_SECONDS] = str(layout.ttl_seconds)
        elif kept != window:
            conflicts.append(f"buckets kept for a {kept} s window recorded, {window} s here")
        read = recorded.aggregator_window_seconds
        if read is not None and read > window:
            conflicts.append(
                f"an aggregator reads {read} s windows, longer than the {window} s this worker "
                "keeps buckets for"
            )
    else:
        if kept is not None and window > kept:
            conflicts.append(
                f"buckets are kept for a {kept} s window, shorter than this aggregator's "
                f"{window} s: its oldest buckets would have expired"
            )
        if recorded.aggregator_window_seconds != window:
            writes[AGGREGATOR_WINDOW_SECONDS] = str(window)
    return LayoutVerdict(tuple(conflicts), {} if conflicts else writes)


def mismatch_message(
    recorded: RecordedLayout, layout: WindowLayout, role: Role, conflicts: tuple[str, ...]
) -> str:
    """The one ERROR line: what differs, both layouts, and what to do."""
    if role is Role.WORKER:
        settings = f"--bucket-seconds {recorded.bucket_seconds or layout.bucket_seconds}"
        if recorded.kept_window_seconds is not None:
            settings += f" --window {recorded.kept_window_seconds}"
    else:
        settings = f"--bucket-seconds {recorded.bucket_seconds or layout.bucket_seconds}"
        if recorded.kept_window_seconds is not None:
            settings += f" and a --window of at most {recorded.kept_window_seconds}"
    return (
        f"the window layout recorded in Redis ({layout.layout_key}) does not fit this {role}: "
        f"{'; '.join(conflicts)}. Recorded: {recorded.describe()}. This {role}: "
        f"{describe_own(layout, role)}. Start it with {settings}; or, to change the layout on "
        f"purpose, stop every worker and aggregator of prefix {layout.prefix}, delete the "
        f"record (redis-cli DEL {layout.layout_key}) and start them all with the new settings. "
        f"Exiting with code {EXIT_FATAL} (not restarted)."
    )


def _text(raw: Any) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def read_layout(client: redis.Redis, layout: WindowLayout) -> RecordedLayout:
    """The record under ``layout``'s prefix (empty when nothing was recorded)."""
    raw: dict[Any, Any] = client.hgetall(layout.layout_key)
    return RecordedLayout.from_fields({_text(k): _text(v) for k, v in raw.items()})


def record_layout(client: redis.Redis, layout: WindowLayout, role: Role) -> RecordedLayout:
    """Record what is not recorded yet and compare the rest; the record as it now stands.
    Raises ``LayoutMismatchError`` when ``layout`` does not fit it."""
    script = client.register_script(_RECORD)
    # A lost compare-and-set means another starting process recorded its fields meanwhile:
    # each one writes once, so this ends after at most as many rounds as processes start.
    while True:
        recorded = read_layout(client, layout)
        verdict = judge_layout(recorded, layout, role)
        if verdict.conflicts:
            raise LayoutMismatchError(mismatch_message(recorded, layout, role, verdict.conflicts))
        if not verdict.writes:
            return recorded
        seen, writes = json.dumps(recorded.fields), json.dumps(verdict.writes)
        if int(script(keys=[layout.layout_key], args=[seen, writes])) == 1:
            return RecordedLayout.from_fields({**recorded.fields, **verdict.writes})


def await_layout_agreement(
    client: redis.Redis,
    layout: WindowLayout,
    role: Role,
    stop: threading.Event,
    probe: LoopProbe | None = None,
    *,
    backoff: Backoff | None = None,
    wait: Callable[[float], object] | None = None,
) -> RecordedLayout | None:
    """``record_layout``, retried with backoff while Redis does not answer (a process may start
    before Redis does); None when ``stop`` is set first. Raises ``LayoutMismatchError``, or
    ``FatalRedisError`` when Redis refuses in a way no retry can fix."""
    probe = probe or NoProbe()
    pause = wait or stop.wait
    attempts = Attempts(backoff or Backoff())
    while not stop.is_set():
        try:
            recorded = record_layout(client, layout, role)
        except redis.RedisError as exc:
            judge(exc, "record the window layout")
            delay = attempts.failed()
            logger.log(
                attempts.log_level,
                "Redis unavailable (%s: %s) while recording the window layout; attempt %d "
                "failed, retrying in %.1f s",
                type(exc).__name__,
                exc,
                attempts.failures,
                delay,
            )
            probe.beat(False, "waiting for Redis to check the window layout")
            pause(delay)
            continue
        logger.info("window layout in Redis: %s", recorded.describe())
        return recorded
    return None
