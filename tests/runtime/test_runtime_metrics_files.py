"""A pool's metrics files stay bounded: the supervisor folds every dead child's counters and
histograms into one archive and removes its files, so 50 restarts leave the live children's files
and the archive, and the scraped totals are every child's increments, none lost or doubled."""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
from collections.abc import Callable
from multiprocessing.connection import wait
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path

from loginmetrics.runtime.metrics import pool_registry, process_exited, use_multiprocess_dir
from loginmetrics.runtime.metrics_files import archive_dead_process
from loginmetrics.runtime.supervisor import ChildProcess, ChildSpec, Supervisor
from loginmetrics.worker.metrics import worker_metrics
from tests.runtime.test_runtime_metrics import value

RESTARTS = 50
CHILDREN = 2


def increment_of(pid: int) -> int:
    """What the child with ``pid`` adds: differs between children, so a lost or doubled child
    shows in the total."""
    return pid % 97 + 1


def _crashing_child(
    directory: str, births: Synchronized[int], initializer: Callable[[], None] | None = None
) -> None:
    """A pool child: counts its batch in the pool's directory and reports a paused partition,
    then dies (a crash), unless RESTARTS children were born before it: those stay alive."""
    use_multiprocess_dir(directory)
    figures = worker_metrics()
    figures.batch_applied(increment_of(os.getpid()), 1, ["missing_fields"], 0.003)
    figures.partitions_paused.set(1)
    with births.get_lock():
        births.value += 1
        born = births.value
    if born <= RESTARTS:
        sys.exit(1)
    time.sleep(60)


class Clock:
    """Jumps 100 s a reading: every restart is due at once (no backoff to sit through)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 100.0
        return self.now


def file_owners(directory: Path) -> set[str]:
    """Whose figures the directory holds: a pid, or the archive."""
    return {path.stem.rsplit("_", 1)[1] for path in directory.glob("*.db")}


def test_50_restarts_leave_the_live_childrens_files_and_one_archive_with_exact_totals(
    tmp_path: Path,
) -> None:
    context = multiprocessing.get_context("forkserver")  # a real process, quicker than spawn
    births = context.Value("i", 0)
    started: list[ChildProcess] = []
    exited: list[int] = []

    def new_process(spec: ChildSpec, initializer: Callable[[], None] | None) -> ChildProcess:
        process = context.Process(target=spec.target, args=(*spec.args, initializer))
        started.append(process)
        return process

    def on_exit(pid: int) -> None:
        exited.append(pid)
        process_exited(pid, str(tmp_path))

    specs = [
        ChildSpec(f"worker-{n}", _crashing_child, (str(tmp_path), births)) for n in range(CHILDREN)
    ]
    supervisor = Supervisor(specs, clock=Clock(), new_process=new_process, on_exit=on_exit)
    supervisor.start()
    deadline = time.monotonic() + 120
    while len(exited) < RESTARTS or len(started) < RESTARTS + CHILDREN:
        assert time.monotonic() < deadline, f"{len(exited)} exits, {len(started)} started"
        supervisor.step()
        wait([p.sentinel for p in started if p.exitcode is None], 0.1)
    live = [p for p in started if p.is_alive()]
    assert len(live) == CHILDREN
    assert len(exited) == RESTARTS

    expected = sum(increment_of(p.pid) for p in started if p.pid is not None)
    registry = pool_registry(str(tmp_path))
    deadline = time.monotonic() + 30
    while value(registry, "loginmetrics_messages_total", outcome="valid") != expected:
        assert time.monotonic() < deadline, "the live children never counted their batch"
        time.sleep(0.1)
    try:
        owners = file_owners(tmp_path)
        assert owners <= {str(p.pid) for p in live} | {"archive"}
        assert len(owners) <= CHILDREN + 1
        assert len(list(tmp_path.glob("*.db"))) <= 3 * CHILDREN + 2  # counter, histogram, gauge
        children = len(started)
        assert value(registry, "loginmetrics_messages_total", outcome="invalid") == children
        assert value(registry, "loginmetrics_batches_total", result="applied") == children
        assert value(registry, "loginmetrics_batch_apply_seconds_count") == children
        assert value(registry, "loginmetrics_batch_apply_seconds_bucket", le="0.0025") == 0
        assert value(registry, "loginmetrics_batch_apply_seconds_bucket", le="0.005") == children
        assert value(registry, "loginmetrics_partitions_paused") == CHILDREN, "the live ones'"
    finally:
        supervisor.drain()  # terminates the live ones and archives them too
    assert file_owners(tmp_path) == {"archive"}, "the drained children were archived too"
    assert value(registry, "loginmetrics_messages_total", outcome="valid") == expected
    assert value(registry, "loginmetrics_partitions_paused") is None, "no live process left"


def test_archiving_twice_or_a_pid_without_files_changes_nothing(tmp_path: Path) -> None:
    context = multiprocessing.get_context("forkserver")
    births = context.Value("i", 0)  # held here until the child has it
    child = context.Process(target=_crashing_child, args=(str(tmp_path), births))
    child.start()
    child.join(60)
    assert child.pid is not None
    registry = pool_registry(str(tmp_path))
    before = value(registry, "loginmetrics_messages_total", outcome="valid")
    assert before == increment_of(child.pid)
    for _ in range(2):
        archive_dead_process(tmp_path, child.pid)
    archive_dead_process(tmp_path, 999_999_999)
    assert value(registry, "loginmetrics_messages_total", outcome="valid") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "counter_archive.db",
        "histogram_archive.db",
    ]
