"""The join gate: the first processes of a pool subscribe together; a later one never waits."""

from __future__ import annotations

import os
import threading

from loginmetrics.worker.join_gate import JoinGate


def test_the_first_members_pass_together_and_the_gate_is_removed() -> None:
    gate = JoinGate.create(members=3)
    passed: list[float] = []
    arrived = threading.Barrier(3)

    def member() -> None:
        arrived.wait()
        assert gate.pass_together(timeout=10)
        passed.append(1)

    early = [threading.Thread(target=member) for _ in range(2)]
    for thread in early:
        thread.start()
    arrived.wait()  # the third arrives last
    assert gate.pass_together(timeout=10)
    for thread in early:
        thread.join(10)
    assert len(passed) == 2
    assert not os.path.exists(gate.path)


def test_a_process_started_later_goes_on_at_once() -> None:
    gate = JoinGate.create(members=2)
    os.unlink(gate.path)  # the first generation has passed
    waited: list[float] = []
    assert not gate.pass_together(sleep=waited.append)
    assert waited == []


def test_a_member_waits_no_longer_than_the_timeout_for_one_that_never_comes() -> None:
    gate = JoinGate.create(members=2)
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    assert gate.pass_together(timeout=3.0, clock=lambda: now[0], sleep=sleep)
    assert 3.0 <= now[0] < 3.1
    assert not os.path.exists(gate.path), "removed: the late one does not wait either"
