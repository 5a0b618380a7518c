"""Keeps a set of child processes (workers, and the aggregator in ``run`` mode) running:
restarts one that dies, with backoff; drains them all on SIGINT/SIGTERM."""

from __future__ import annotations

import logging
import multiprocessing
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any

from loginmetrics.runtime.signals import EXIT_FORCED, EXIT_OK, stop_signals

logger = logging.getLogger(__name__)

# A child that lived this long had a healthy run: its next crash restarts it at once.
HEALTHY_RUN_SECONDS = 60.0
MAX_RESTART_DELAY_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """A process to keep running: ``target(*args, initializer)`` in a fresh (spawned) interpreter.

    ``target`` installs its own SIGTERM handler that drains, and ignores SIGINT.
    """

    name: str
    target: Callable[..., None]
    args: tuple[Any, ...]


@dataclass(slots=True)
class Child:
    spec: ChildSpec
    process: BaseProcess
    started_at: float
    restart_delay: float = 0.0
    restart_at: float | None = None


class Supervisor:
    """The parent of the pool; builds no clients itself (children do, after spawn)."""

    def __init__(
        self,
        specs: list[ChildSpec],
        initializer: Callable[[], None] | None = None,
        drain_timeout_seconds: float = 30.0,
    ) -> None:
        self._specs = specs
        self._initializer = initializer
        self._drain_timeout = drain_timeout_seconds
        self._context = multiprocessing.get_context("spawn")
        self._children: dict[str, Child] = {}
        self._stopping = False
        self._forced = False

    def run(self) -> int:
        with stop_signals(self._request_stop):
            for spec in self._specs:
                self._start(spec, restart_delay=0.0)
            logger.info("started %s", ", ".join(spec.name for spec in self._specs))
            while not self._stopping:
                self._watch()
            return self._drain()

    @property
    def pids(self) -> list[int]:
        return [c.process.pid for c in self._children.values() if c.process.pid is not None]

    def _request_stop(self, signum: int, _frame: FrameType | None) -> None:
        if self._stopping:
            logger.warning("second %s: stopping now", signal.Signals(signum).name)
            self._forced = True
        else:
            logger.info(
                "%s: draining (send it again to stop at once)",
                signal.Signals(signum).name,
            )
        self._stopping = True

    def _start(self, spec: ChildSpec, restart_delay: float) -> None:
        process = self._context.Process(
            target=spec.target, args=(*spec.args, self._initializer), name=spec.name
        )
        process.start()
        self._children[spec.name] = Child(spec, process, time.monotonic(), restart_delay)

    def _watch(self) -> None:
        # Dead children awaiting their restart are left out: their sentinels stay ready.
        wait([c.process.sentinel for c in self._children.values() if c.restart_at is None], 0.5)
        now = time.monotonic()
        for child in list(self._children.values()):
            if self._stopping or child.process.is_alive():
                continue
            if child.restart_at is None:
                lived = now - child.started_at
                child.restart_delay = (
                    0.0
                    if lived >= HEALTHY_RUN_SECONDS
                    else min(max(1.0, child.restart_delay * 2), MAX_RESTART_DELAY_SECONDS)
                )
                child.restart_at = now + child.restart_delay
                logger.error(
                    "%s (pid %s) exited with code %s after %.1f s; restarting in %.0f s",
                    child.spec.name,
                    child.process.pid,
                    child.process.exitcode,
                    lived,
                    child.restart_delay,
                )
            if now >= child.restart_at:
                self._start(child.spec, restart_delay=child.restart_delay)

    def _drain(self) -> int:
        for child in self._children.values():
            if child.process.is_alive():
                child.process.terminate()  # SIGTERM: finish the batch, commit, leave the group
        deadline = time.monotonic() + self._drain_timeout
        for child in self._children.values():
            while child.process.is_alive() and not self._forced:
                child.process.join(min(0.2, max(0.0, deadline - time.monotonic())))
                if time.monotonic() >= deadline:
                    break
            if child.process.is_alive():
                logger.warning("%s did not stop in time; killing it", child.spec.name)
                child.process.kill()
                child.process.join()
        logger.info("all processes stopped")
        return EXIT_FORCED if self._forced else EXIT_OK
