"""Figures about the process rather than the data: CPU, memory and file descriptors
(prometheus-client's process collector; a pool's summed over its supervisor and children), and
``loginmetrics_build_info``."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Sequence
from functools import partial
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from prometheus_client import ProcessCollector
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

BUILD_INFO = "loginmetrics_build_info"
PROC = "/proc"
# The process collector's families a pool reports as sums over its processes; the others (start
# time, fd limit) are the supervisor's own.
SUMMED = {
    "process_virtual_memory_bytes": "Virtual memory size of the pool's live processes, in bytes",
    "process_resident_memory_bytes": "Resident memory of the pool's live processes, in bytes",
    "process_open_fds": "Open file descriptors of the pool's live processes",
}
OWN = {
    "process_start_time_seconds": "Start time of the pool's supervisor, in seconds since the epoch",
    "process_max_fds": "Most file descriptors one process of the pool may open",
}
CPU = "process_cpu_seconds"


def package_version() -> str:
    try:
        return version("loginmetrics")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


class BuildInfo(Collector):
    """``loginmetrics_build_info{version}`` = 1: which release a process runs."""

    def __init__(self) -> None:
        self._version = package_version()

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily(
            BUILD_INFO, "Always 1; the loginmetrics version this process runs", labels=["version"]
        )
        family.add_metric([self._version], 1)
        yield family


def process_collector(proc: str = PROC) -> Collector:
    """prometheus-client's collector of this process's CPU, memory and descriptors."""
    return ProcessCollector(proc=proc, registry=None)


class PoolProcessCollector(Collector):
    """The process collector's figures for a whole pool, as one process: the supervisor's and
    its live children's memory and descriptors, and the CPU time of all of them, the children
    that already exited (and were reaped) included, so that the counter never goes down when a
    child is restarted. A pool's children each have their own /proc entry; prometheus-client's
    multiprocess mode has no process figures of its own."""

    def __init__(self, proc: str = PROC) -> None:
        self._proc = proc
        self._lock = threading.Lock()
        # Highest CPU total reported: a child read as live and reaped in the same scrape would
        # be counted twice, or not at all; a counter must not go down after either.
        self._cpu_seconds = 0.0

    def collect(self) -> Iterable[Metric]:
        own = _figures(ProcessCollector(proc=self._proc, registry=None))
        if not own:
            return []  # no /proc on this system
        reaped = os.times()
        children = [
            _figures(ProcessCollector(pid=partial(int, pid), proc=self._proc, registry=None))
            for pid in child_pids(self._proc)
        ]
        cpu = own.get(CPU, 0.0) + reaped.children_user + reaped.children_system
        cpu += sum(figures.get(CPU, 0.0) for figures in children)
        with self._lock:
            self._cpu_seconds = max(self._cpu_seconds, cpu)
            cpu = self._cpu_seconds
        families: list[Metric] = [
            CounterMetricFamily(
                CPU, "Total user and system CPU time of the pool's processes, in seconds", cpu
            )
        ]
        for name, meaning in SUMMED.items():
            if name in own:
                total = own[name] + sum(figures.get(name, 0.0) for figures in children)
                families.append(GaugeMetricFamily(name, meaning, total))
        for name, meaning in OWN.items():
            if name in own:
                families.append(GaugeMetricFamily(name, meaning, own[name]))
        return families


def child_pids(proc: str = PROC) -> list[int]:
    """This process's children (live or exited and not yet reaped), from every thread's list."""
    pids: list[int] = []
    for children in Path(proc, str(os.getpid()), "task").glob("*/children"):
        try:
            pids.extend(int(pid) for pid in children.read_text().split())
        except OSError:
            continue  # the thread ended meanwhile
    return pids


def _figures(collector: Collector) -> dict[str, float]:
    """Family name -> value of a collector whose families each have one sample."""
    return {family.name: float(family.samples[0].value) for family in collector.collect()}


def pool_collectors() -> Sequence[Collector]:
    return [PoolProcessCollector(), BuildInfo()]


def process_collectors() -> Sequence[Collector]:
    return [process_collector(), BuildInfo()]
