"""Writes a batch's increments into the window, exactly once per partition offset range."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
import redis

from loginmetrics.window.increments import WindowIncrements
from loginmetrics.window.layout import OTHER_VALUES, WindowLayout
from loginmetrics.window.scripts import load_lua

_APPLY_BATCH = load_lua("loginmetrics.window", "apply_batch.lua")
_ADOPT_TOPIC = load_lua("loginmetrics.window", "adopt_topic.lua")
_RESTART_PARTITION = load_lua("loginmetrics.window", "restart_partition.lua")
_MARK_CAUGHT_UP = load_lua("loginmetrics.window", "mark_caught_up.lua")


@dataclass(frozen=True, slots=True)
class PartitionAdvance:
    """A batch moves a partition's applied offset from ``expected`` to ``applied``.

    ``expected`` is the last applied offset this worker read from Redis (None when nothing
    was stored); ``applied`` is the offset of the batch's last message in the partition.
    """

    partition: int
    expected: int | None
    applied: int


@dataclass(frozen=True, slots=True)
class NewIncarnation:
    """The input topic was recreated: the window's offsets belonged to ``old_topic_id`` and
    were dropped (``dropped_offsets``: partition -> last applied offset)."""

    old_topic_id: str
    dropped_offsets: dict[int, int]


@dataclass(frozen=True, slots=True)
class ApplyOutcome:
    """Either the batch went into ``bucket`` (the newest it wrote) at ``server_time`` (the Redis
    clock), or ``partition`` belongs to someone else now."""

    applied: bool
    bucket: int | None = None
    conflict_partition: int | None = None
    stored_offset: int | None = None
    server_time: float | None = None
    # Event time: the newest window end emitted and the oldest bucket written, as they stood.
    emitted_end: int | None = None
    first_bucket: int | None = None


def _increments_document(increments: WindowIncrements) -> dict[str, Any]:
    return {
        "users": increments.users,
        "ips": increments.ips,
        "devices": increments.devices,
        "versions": increments.versions,
        "locales": increments.locales,
        "valid": increments.valid,
        "invalid": increments.invalid,
    }


def _offset_text(offset: int | None) -> str:
    return "" if offset is None else str(offset)


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def _parse_offset(raw: bytes | str | None) -> int | None:
    if raw is None or raw in (b"", ""):
        return None
    return int(raw)


class WindowWriter:
    """The worker's side of the window: applied offsets in, batches out."""

    def __init__(self, client: redis.Redis, layout: WindowLayout, topic: str) -> None:
        self._client = client
        self._layout = layout
        self._offsets_key = layout.applied_offsets_key(topic)
        self._topic_id_key = layout.topic_id_key(topic)
        self._watermarks_key = layout.watermarks_key(topic)
        self._apply_keys = [
            self._offsets_key,
            self._watermarks_key,
            layout.last_emitted_key,
            layout.late_buckets_key,
            layout.first_bucket_key,
        ]
        self._apply = client.register_script(_APPLY_BATCH)
        self._adopt_topic = client.register_script(_ADOPT_TOPIC)
        self._restart_partition = client.register_script(_RESTART_PARTITION)
        self._mark_caught_up = client.register_script(_MARK_CAUGHT_UP)
        self._caught_up_key = layout.caught_up_key(topic)

    def adopt_topic(self, topic_id: str) -> NewIncarnation | None:
        """Tie the applied offsets to the topic id the broker reports; None when they already
        belong to it (or none was recorded yet)."""
        result = self._adopt_topic(keys=[self._offsets_key, self._topic_id_key], args=[topic_id])
        if int(result[0]) == 0:
            return None
        flat = [_text(value) for value in result[2:]]
        dropped = {int(p): int(o) for p, o in zip(flat[::2], flat[1::2], strict=True) if o}
        return NewIncarnation(_text(result[1]), dropped)

    def restart_partition(self, partition: int, expected: int, last: int | None) -> bool:
        """Move ``partition``'s applied offset from ``expected`` to ``last`` (None: forget it);
        False when the stored offset is not ``expected`` any more."""
        moved = self._restart_partition(
            keys=[self._offsets_key], args=[partition, str(expected), _offset_text(last)]
        )
        return int(moved) == 1

    def applied_offsets(self, partitions: Iterable[int]) -> dict[int, int | None]:
        """Last applied offset of each partition, None where the window has none yet."""
        wanted = list(partitions)
        if not wanted:
            return {}
        raw: list[Any] = self._client.hmget(self._offsets_key, [str(p) for p in wanted])
        return {p: _parse_offset(value) for p, value in zip(wanted, raw, strict=True)}

    def mark_caught_up(self, caught_up: Mapping[int, bool]) -> tuple[float, int | None]:
        """Event time: which partitions are caught up with the end of their log now. Returns
        the Redis clock and the end of the newest window emitted (None: none yet)."""
        args = [str(v) for p, up in sorted(caught_up.items()) for v in (p, int(up))]
        now, emitted = self._mark_caught_up(
            keys=[self._caught_up_key, self._layout.last_emitted_key], args=args
        )
        return float(now), _parse_offset(emitted)

    def watermarks(self, partitions: Iterable[int]) -> dict[int, float | None]:
        """Event time: each partition's watermark, None where none is stored. Read after the
        applied offsets, not with them: a batch applied in between moves the offset too, so the
        compare-and-set refuses whatever this worker folds on top of a mismatched pair."""
        wanted = list(partitions)
        if not wanted:
            return {}
        raw: list[Any] = self._client.hmget(self._watermarks_key, [str(p) for p in wanted])
        return {p: None if v is None else float(v) for p, v in zip(wanted, raw, strict=True)}

    def apply_batch(
        self, advances: Sequence[PartitionAdvance], increments: WindowIncrements
    ) -> ApplyOutcome:
        """Processing time: apply ``increments`` to the bucket of the Redis clock and move
        every partition in ``advances``, or do nothing at all."""
        return self._run_apply(advances, _increments_document(increments))

    def apply_event_batch(
        self,
        advances: Sequence[PartitionAdvance],
        buckets: Mapping[int, WindowIncrements],
        watermarks: Mapping[int, float],
    ) -> ApplyOutcome:
        """Event time: apply each bucket's increments, move every partition in ``advances`` and
        its watermark, or do nothing at all."""
        return self._run_apply(
            advances,
            {
                "buckets": [
                    [start, _increments_document(increments)]
                    for start, increments in sorted(buckets.items())
                ],
                "watermarks": [[p, repr(w)] for p, w in sorted(watermarks.items())],
            },
        )

    def _run_apply(
        self, advances: Sequence[PartitionAdvance], document: dict[str, Any]
    ) -> ApplyOutcome:
        document["offsets"] = [
            [a.partition, _offset_text(a.expected), str(a.applied)] for a in advances
        ]
        result = self._apply(
            keys=self._apply_keys,
            args=[
                self._layout.bucket_key_prefix,
                self._layout.bucket_seconds,
                self._layout.ttl_seconds,
                msgspec.json.encode(document),
                self._layout.tracked_values,
                OTHER_VALUES,
            ],
        )
        if int(result[0]) == 1:
            return ApplyOutcome(
                applied=True,
                bucket=int(result[1]),
                server_time=float(_text(result[2])),
                emitted_end=_parse_offset(result[3]),
                first_bucket=_parse_offset(result[4]),
            )
        return ApplyOutcome(
            applied=False,
            conflict_partition=int(result[1]),
            stored_offset=_parse_offset(result[2]),
        )
