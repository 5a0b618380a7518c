"""The supervisor's decisions with fake processes and a clock the test moves: restarts with a
growing delay, a healthy run's reset, no restart after EXIT_FATAL, and the drain."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable

import pytest

from loginmetrics.runtime.signals import EXIT_FATAL, EXIT_OK
from loginmetrics.runtime.supervisor import ChildProcess, ChildSpec, Supervisor

_pids = itertools.count(1000)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class FakeProcess:
    """A child process that exits when the test says; SIGTERM ends it unless ``stubborn``."""

    def __init__(self, name: str, clock: Clock) -> None:
        self.name = name
        self.clock = clock
        self.pid: int | None = None
        self.exitcode: int | None = None
        self.sentinel = 0
        self.stubborn = False
        self.terminated = self.killed = False

    def start(self) -> None:
        self.pid = next(_pids)

    def is_alive(self) -> bool:
        return self.pid is not None and self.exitcode is None

    def terminate(self) -> None:
        self.terminated = True
        if not self.stubborn:
            self.exitcode = 0

    def kill(self) -> None:
        self.killed = True
        self.exitcode = -9

    def join(self, timeout: float | None = None) -> None:
        self.clock.now += timeout or 0.0


class Pool:
    def __init__(self, names: list[str], drain_timeout: float = 30.0) -> None:
        self.clock = Clock()
        self.started: list[FakeProcess] = []
        self.start_times: list[float] = []
        self.waits: list[float] = []
        specs = [ChildSpec(name, print, ()) for name in names]
        self.supervisor = Supervisor(
            specs,
            drain_timeout_seconds=drain_timeout,
            clock=self.clock,
            new_process=self.new_process,
            wait_any=self.wait_any,
        )

    def new_process(self, spec: ChildSpec, _initializer: Callable[[], None] | None) -> ChildProcess:
        process = FakeProcess(spec.name, self.clock)
        self.started.append(process)
        self.start_times.append(self.clock.now)
        return process

    def wait_any(self, _sentinels: list[int], timeout: float) -> None:
        self.waits.append(timeout)
        self.clock.now += timeout

    def latest(self, name: str) -> FakeProcess:
        return [p for p in self.started if p.name == name][-1]

    def run_for(self, seconds: float) -> None:
        end = self.clock.now + seconds
        while self.clock.now < end and not self.supervisor.stopping:
            self.wait_any([], self.supervisor.step())


def test_a_crashing_child_is_restarted_after_a_growing_delay() -> None:
    pool = Pool(["worker-0", "worker-1"])
    pool.supervisor.start()
    restarted_at = []
    for _ in range(4):
        pool.latest("worker-0").exitcode = 1
        before = len(pool.started)
        crashed_at = pool.clock.now
        while len(pool.started) == before:
            pool.wait_any([], pool.supervisor.step())
        restarted_at.append(round(pool.start_times[-1] - crashed_at, 1))
    assert restarted_at == [1.0, 2.0, 4.0, 8.0]
    assert [p.name for p in pool.started].count("worker-1") == 1, "the other one kept running"
    assert max(pool.waits) <= 0.5


def test_a_child_that_ran_long_is_restarted_at_once() -> None:
    pool = Pool(["worker-0"])
    pool.supervisor.start()
    pool.latest("worker-0").exitcode = 1
    pool.run_for(2.0)  # restarted after 1 s
    pool.run_for(61.0)  # then a healthy run
    pool.latest("worker-0").exitcode = -9
    pool.supervisor.step()
    assert len(pool.started) == 3, "restarted in the same step"


def test_a_child_that_will_not_heal_is_not_restarted_and_the_pool_exits_with_its_code(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pool = Pool(["worker-0", "worker-1", "aggregator"])
    pool.supervisor.start()
    pool.run_for(3.0)
    pool.latest("worker-1").exitcode = EXIT_FATAL
    pool.run_for(120.0)

    assert pool.supervisor.stopping
    assert len(pool.started) == 3, "nothing restarted"
    assert pool.supervisor.drain() == EXIT_FATAL
    assert pool.latest("worker-0").terminated
    assert pool.latest("aggregator").terminated
    assert not pool.latest("worker-1").terminated, "already gone"
    assert "not restarting it" in caplog.text


def test_drain_kills_a_child_that_does_not_stop_in_time() -> None:
    pool = Pool(["worker-0", "worker-1"], drain_timeout=5.0)
    pool.supervisor.start()
    pool.latest("worker-1").stubborn = True
    assert pool.supervisor.drain() == EXIT_OK
    assert pool.latest("worker-1").killed
    assert not pool.latest("worker-0").killed
    assert 5.0 <= pool.clock.now <= 5.5


def test_run_returns_the_fatal_code(caplog: pytest.LogCaptureFixture) -> None:
    pool = Pool(["worker-0", "worker-1"])
    original = pool.wait_any

    def wait_any(sentinels: list[int], timeout: float) -> None:
        original(sentinels, timeout)
        if pool.clock.now >= 2.0 and pool.latest("worker-0").exitcode is None:
            pool.latest("worker-0").exitcode = EXIT_FATAL

    pool.supervisor._wait_any = wait_any
    with caplog.at_level(logging.INFO):
        assert pool.supervisor.run() == EXIT_FATAL
    assert len(pool.started) == 2
