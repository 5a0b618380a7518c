"""A pool of one process gives up on a child that keeps dying, so the orchestrator sees it; every
exit is reported (the pool forgets that process's live gauges)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from loginmetrics.runtime.crash_loop import EXIT_CRASH_LOOP, CrashLoop
from loginmetrics.runtime.signals import EXIT_OK
from loginmetrics.runtime.supervisor import ChildProcess, ChildSpec, Supervisor
from tests.runtime.test_runtime_supervisor import Clock, FakeProcess


def test_exits_count_within_a_sliding_span() -> None:
    loop = CrashLoop(exits=3, within=60.0)
    assert not loop.exited(0.0)
    assert not loop.exited(30.0)
    assert loop.exited(60.0)  # three within 60 s
    spaced = CrashLoop(exits=3, within=60.0)
    assert not any(spaced.exited(t) for t in (0.0, 40.0, 80.0, 120.0, 160.0))


class OneProcessPool:
    def __init__(self, crash_loop: CrashLoop | None) -> None:
        self.clock = Clock()
        self.started: list[FakeProcess] = []
        self.exited: list[int] = []
        self.supervisor = Supervisor(
            [ChildSpec("worker-0", print, ())],
            clock=self.clock,
            new_process=self.new_process,
            wait_any=lambda _sentinels, timeout: self.advance(timeout),
            crash_loop=crash_loop,
            on_exit=self.exited.append,
        )

    def new_process(self, spec: ChildSpec, _init: Callable[[], None] | None) -> ChildProcess:
        self.started.append(FakeProcess(spec.name, self.clock))
        return self.started[-1]

    def advance(self, seconds: float) -> None:
        self.clock.now += seconds

    def crash_repeatedly(self, times: int) -> None:
        """The child dies right after each start, ``times`` times (or until the pool stops)."""
        for _ in range(times):
            self.started[-1].exitcode = 1
            before = len(self.started)
            while len(self.started) == before and not self.supervisor.stopping:
                self.advance(self.supervisor.step())


def test_a_crash_looping_child_ends_the_pool_with_its_own_code(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pool = OneProcessPool(CrashLoop(exits=5, within=120.0))
    pool.supervisor.start()
    pool.crash_repeatedly(10)

    assert pool.supervisor.stopping
    assert len(pool.started) == 5, "restarted after each of the first four exits only"
    assert pool.supervisor.drain() == EXIT_CRASH_LOOP
    assert "exiting with code 70 so that the orchestrator sees the crash loop" in caplog.text
    assert pool.exited[:5] == [p.pid for p in pool.started]


def test_without_a_limit_a_pool_restarts_for_ever() -> None:
    pool = OneProcessPool(None)
    pool.supervisor.start()
    pool.crash_repeatedly(10)
    assert not pool.supervisor.stopping
    assert len(pool.started) == 11
    assert pool.supervisor.drain() == EXIT_OK
    assert set(pool.exited) == {p.pid for p in pool.started}, "every exit reported, drain too"
