"""Keeps a set of child processes (workers, and the aggregator in ``run`` mode) running:
restarts one that dies, with backoff, except one that exits with ``EXIT_FATAL``, which stops
them all; drains them all on SIGINT/SIGTERM."""

from __future__ import annotations

import logging
import multiprocessing
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import wait
from types import FrameType
from typing import Any, Protocol

from loginmetrics.runtime.crash_loop import EXIT_CRASH_LOOP, CrashLoop
from loginmetrics.runtime.signals import EXIT_FATAL, EXIT_FORCED, EXIT_OK, stop_signals

logger = logging.getLogger(__name__)

# A child that lived this long had a healthy run: its next crash restarts it at once (a worker
# restarted in its slot takes its predecessor's partitions back without a rebalance).
HEALTHY_RUN_SECONDS = 10.0
MAX_RESTART_DELAY_SECONDS = 30.0
# Longest wait for a child to exit before the supervisor looks again.
WATCH_SECONDS = 0.5


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """A process to keep running: ``target(*args, initializer)`` in a fresh (spawned) interpreter.

    ``target`` installs its own SIGTERM handler that drains, and ignores SIGINT.
    """

    name: str
    target: Callable[..., None]
    args: tuple[Any, ...]


class ChildProcess(Protocol):
    """The part of multiprocessing's Process the supervisor uses (tests pass fakes)."""

    @property
    def pid(self) -> int | None: ...
    @property
    def exitcode(self) -> int | None: ...
    @property
    def sentinel(self) -> int: ...
    def start(self) -> None: ...
    def is_alive(self) -> bool: ...
    def terminate(self) -> None: ...
    def kill(self) -> None: ...
    def join(self, timeout: float | None = None) -> None: ...


# (spec, initializer) -> a process not started yet
ProcessFactory = Callable[[ChildSpec, Callable[[], None] | None], ChildProcess]


@dataclass(slots=True)
class Child:
    spec: ChildSpec
    process: ChildProcess
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
        *,
        clock: Callable[[], float] = time.monotonic,
        new_process: ProcessFactory | None = None,
        wait_any: Callable[[list[int], float], object] = wait,
        crash_loop: CrashLoop | None = None,
        on_exit: Callable[[int], None] | None = None,
    ) -> None:
        self._specs = specs
        self._initializer = initializer
        self._drain_timeout = drain_timeout_seconds
        self._clock = clock
        self._new_process = new_process or _spawned_process
        self._wait_any = wait_any
        self._children: dict[str, Child] = {}
        self._stopping = False
        self._forced = False
        self._fatal: Child | None = None  # the child that exited with EXIT_FATAL, if one did
        # Set: give up (exit EXIT_CRASH_LOOP) when children exit this often (a pool of one).
        self._crash_loop = crash_loop
        self._crash_looped = False
        self._on_exit = on_exit  # called with the pid of every child that exited

    def run(self) -> int:
        with stop_signals(self._request_stop):
            self.start()
            while not self._stopping:
                delay = self.step()
                # Dead children awaiting their restart are left out: their sentinels stay ready.
                self._wait_any(
                    [c.process.sentinel for c in self._children.values() if c.restart_at is None],
                    delay,
                )
            return self.drain()

    @property
    def pids(self) -> list[int]:
        return [c.process.pid for c in self._children.values() if c.process.pid is not None]

    @property
    def stopping(self) -> bool:
        return self._stopping

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

    def start(self) -> None:
        for spec in self._specs:
            self._start(spec, restart_delay=0.0)
        logger.info("started %s", ", ".join(spec.name for spec in self._specs))

    def _start(self, spec: ChildSpec, restart_delay: float) -> None:
        process = self._new_process(spec, self._initializer)
        process.start()
        self._children[spec.name] = Child(spec, process, self._clock(), restart_delay)

    def step(self) -> float:
        """Deal with children that exited: schedule or make their restart, or stop everything
        after one that will not heal. Return the seconds until something is due."""
        now = self._clock()
        due = WATCH_SECONDS
        for child in list(self._children.values()):
            if self._stopping or child.process.is_alive():
                continue
            if child.restart_at is None:
                self._exited(child)
                if child.process.exitcode == EXIT_FATAL:
                    self._give_up(child)
                    return 0.0
                if self._crash_loop is not None and self._crash_loop.exited(now):
                    self._give_up_crash_loop(child)
                    return 0.0
                self._schedule_restart(child, now)
            assert child.restart_at is not None
            if now >= child.restart_at:
                self._start(child.spec, restart_delay=child.restart_delay)
            else:
                due = min(due, child.restart_at - now)
        return due

    def _schedule_restart(self, child: Child, now: float) -> None:
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

    def _give_up(self, child: Child) -> None:
        # Restarting it would fail the same way, in a loop: the orchestrator (or the operator)
        # has to act, and sees it from this process's exit code.
        logger.error(
            "%s (pid %s) exited with code %d: an error no restart can fix (its ERROR line above "
            "says what to do); not restarting it, stopping the others",
            child.spec.name,
            child.process.pid,
            EXIT_FATAL,
        )
        self._fatal = child
        self._stopping = True

    def _give_up_crash_loop(self, child: Child) -> None:
        assert self._crash_loop is not None
        logger.error(
            "%s (pid %s) exited with code %s, its %d-th exit within %.0f s: not restarting it; "
            "exiting with code %d so that the orchestrator sees the crash loop",
            child.spec.name,
            child.process.pid,
            child.process.exitcode,
            self._crash_loop.exits,
            self._crash_loop.within,
            EXIT_CRASH_LOOP,
        )
        self._crash_looped = True
        self._stopping = True

    def _exited(self, child: Child) -> None:
        if self._on_exit is not None and child.process.pid is not None:
            self._on_exit(child.process.pid)

    def drain(self) -> int:
        """SIGTERM every child, wait up to the drain timeout, kill what is left; the exit code."""
        for child in self._children.values():
            if child.process.is_alive():
                child.process.terminate()  # SIGTERM: finish the batch, commit, leave the group
        deadline = self._clock() + self._drain_timeout
        for child in self._children.values():
            while child.process.is_alive() and not self._forced:
                child.process.join(min(0.2, max(0.0, deadline - self._clock())))
                if self._clock() >= deadline:
                    break
            if child.process.is_alive():
                logger.warning("%s did not stop in time; killing it", child.spec.name)
                child.process.kill()
                child.process.join()
        for child in self._children.values():
            self._exited(child)
        logger.info("all processes stopped")
        if self._fatal is not None:
            return EXIT_FATAL
        if self._crash_looped:
            return EXIT_CRASH_LOOP
        return EXIT_FORCED if self._forced else EXIT_OK


def _spawned_process(spec: ChildSpec, initializer: Callable[[], None] | None) -> ChildProcess:
    """A fresh interpreter (spawn, never fork: clients must not cross into a child)."""
    context = multiprocessing.get_context("spawn")
    process: ChildProcess = context.Process(
        target=spec.target, args=(*spec.args, initializer), name=spec.name
    )
    return process
