"""The operator's view of the window's applied offsets (``loginmetrics status`` and ``offsets``):
read them with the topic incarnation they belong to, and set them while no worker runs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import redis

from loginmetrics.window.apply import WindowWriter
from loginmetrics.window.layout import WindowLayout
from loginmetrics.window.scripts import load_lua

_RESET = load_lua("loginmetrics.window", "reset_offsets.lua")


def _text(raw: Any) -> str | None:
    if raw is None:
        return None
    return raw.decode() if isinstance(raw, bytes) else str(raw)


class AppliedOffsets:
    """The applied offsets of one input topic, as the workers keep them."""

    def __init__(self, client: redis.Redis, layout: WindowLayout, topic: str) -> None:
        self._client = client
        self._offsets_key = layout.applied_offsets_key(topic)
        self._topic_id_key = layout.topic_id_key(topic)
        self._writer = WindowWriter(client, layout, topic)
        self._reset = client.register_script(_RESET)

    def read(self, partitions: Iterable[int]) -> dict[int, int | None]:
        """Last applied offset of each partition, None where the window has none."""
        return self._writer.applied_offsets(partitions)

    def topic_id(self) -> str | None:
        """The incarnation (Kafka topic id) the offsets belong to; None when none is recorded."""
        return _text(self._client.get(self._topic_id_key))

    def reset(self, topic_id: str | None, last: Mapping[int, int | None]) -> str | None:
        """Set each partition's last applied offset (None: forget it), tied to ``topic_id``;
        returns the old incarnation's id when the stored offsets belonged to another one (they
        are dropped). Only while no worker runs: this is no compare-and-set."""
        args: list[str | int] = [topic_id or ""]
        for partition, offset in sorted(last.items()):
            args += [partition, "" if offset is None else str(offset)]
        result = self._reset(keys=[self._offsets_key, self._topic_id_key], args=args)
        return _text(result[1]) if int(result[0]) == 1 else None
