"""Liveness and readiness from heartbeats: every loop (a worker's consume loop, the aggregator's
lease-and-emit loop) reports each turn and whether it is ready; the probes judge the reports."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

# A loop that has not turned for this long is stuck: nothing it waits on legitimately (a poll
# timeout, a backoff capped at 30 s, a Redis retry) takes as long.
STALE_AFTER_SECONDS = 60.0
# A heartbeat is written at most this often while nothing changes (the loop may turn 1000s/s).
BEAT_EVERY_SECONDS = 1.0
HEARTBEAT_PREFIX = "heartbeat-"

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class Beat:
    """The last report of one loop. ``at`` is ``time.monotonic()``, which on Linux is the same
    clock (CLOCK_MONOTONIC) in every process of the host, so a supervisor can compare it."""

    name: str
    pid: int
    at: float
    ready: bool
    detail: str


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    reason: str


def liveness(
    beats: Mapping[str, Beat],
    expected: Sequence[str],
    now: float,
    since: float,
    stale_after: float = STALE_AFTER_SECONDS,
) -> Verdict:
    """Alive while every expected loop has turned within ``stale_after``; one that never
    reported counts from ``since`` (when the probe started), so a slow start is not a death."""
    stuck = []
    for name in expected:
        beat = beats.get(name)
        last = beat.at if beat is not None else since
        if now - last > stale_after:
            what = "has not turned" if beat is not None else "has not reported"
            stuck.append(f"{name} {what} for {now - last:.0f} s")
    if stuck:
        return Verdict(False, "stuck: " + "; ".join(stuck))
    return Verdict(True, f"alive: {len(expected)} loop(s) turning")


def readiness(
    beats: Mapping[str, Beat],
    expected: Sequence[str],
    now: float,
    stale_after: float = STALE_AFTER_SECONDS,
) -> Verdict:
    """Ready when every expected loop reported lately and says it is ready."""
    states = []
    ready = True
    for name in expected:
        beat = beats.get(name)
        if beat is None:
            ready, state = False, "starting"
        elif now - beat.at > stale_after:
            ready, state = False, f"no report for {now - beat.at:.0f} s"
        else:
            ready, state = ready and beat.ready, beat.detail
        states.append(f"{name}: {state}")
    return Verdict(ready, ("ready: " if ready else "not ready: ") + "; ".join(states))


class LoopProbe(Protocol):
    """What a loop calls once per turn."""

    def beat(self, ready: bool, detail: str) -> None: ...


class NoProbe:
    """No probe is served (no --metrics-port): a turn costs nothing."""

    def beat(self, ready: bool, detail: str) -> None:
        pass


class Heartbeats(Protocol):
    """What a probe reads: the last beat of every loop, by name."""

    def read(self) -> dict[str, Beat]: ...


class _Throttle:
    """Passes a beat when its state changed or ``every`` seconds went by since the last one."""

    def __init__(self, clock: Clock, every: float) -> None:
        self._clock = clock
        self._every = every
        self._last: tuple[bool, str] | None = None
        self._at = 0.0

    def due(self, ready: bool, detail: str) -> float | None:
        now = self._clock()
        if (ready, detail) == self._last and now - self._at < self._every:
            return None
        self._last, self._at = (ready, detail), now
        return now


class HeartbeatFile:
    """A pool child's beats, as one small file in the pool's private directory."""

    def __init__(
        self,
        directory: Path,
        name: str,
        *,
        clock: Clock = time.monotonic,
        every: float = BEAT_EVERY_SECONDS,
    ) -> None:
        self._path = directory / f"{HEARTBEAT_PREFIX}{name}.json"
        self._name = name
        self._throttle = _Throttle(clock, every)

    def beat(self, ready: bool, detail: str) -> None:
        at = self._throttle.due(ready, detail)
        if at is None:
            return
        document = asdict(Beat(self._name, os.getpid(), at, ready, detail))
        partial = self._path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(json.dumps(document))
        os.replace(partial, self._path)  # a reader never sees half a file


class HeartbeatDir:
    """The supervisor's view of its children's heartbeat files."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory

    def read(self) -> dict[str, Beat]:
        beats = {}
        for path in self._directory.glob(f"{HEARTBEAT_PREFIX}*.json"):
            try:
                beat = Beat(**json.loads(path.read_text()))
            except (OSError, ValueError, TypeError):
                continue  # replaced or removed while read: the next probe sees it
            beats[beat.name] = beat
        return beats


class LocalHeartbeat:
    """Beats of a loop in the same process as its probe (``loginmetrics aggregate``)."""

    def __init__(
        self, name: str, *, clock: Clock = time.monotonic, every: float = BEAT_EVERY_SECONDS
    ) -> None:
        self.name = name
        self._throttle = _Throttle(clock, every)
        self._beat: Beat | None = None

    def beat(self, ready: bool, detail: str) -> None:
        at = self._throttle.due(ready, detail)
        if at is not None:
            self._beat = Beat(self.name, os.getpid(), at, ready, detail)  # one reference: atomic

    def read(self) -> dict[str, Beat]:
        beat = self._beat
        return {} if beat is None else {beat.name: beat}
