"""The process figures: a pool reports its children's CPU and memory as its own, the CPU of a
child that exited stays counted (the counter never goes down at a restart), and every process
says which version it runs."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version

from prometheus_client import CollectorRegistry
from prometheus_client.registry import Collector

from loginmetrics.runtime.process_metrics import (
    PoolProcessCollector,
    pool_collectors,
    process_collector,
    process_collectors,
)
from tests.runtime.test_runtime_metrics import value

# A child that burns half a second of CPU, says so, and waits for its stdin to close.
BURNER = """
import sys, time
start = time.process_time()
while time.process_time() - start < 0.5:
    pass
print("burnt", flush=True)
sys.stdin.read()
"""


def scrape(*collectors: Collector) -> CollectorRegistry:
    registry = CollectorRegistry()
    for collector in collectors:
        registry.register(collector)
    return registry


def figure(registry: CollectorRegistry, name: str) -> float:
    found = value(registry, name)
    assert found is not None, name
    return found


def test_a_pool_counts_its_childrens_cpu_live_and_after_they_exit() -> None:
    pool = scrape(PoolProcessCollector())
    own = scrape(process_collector())
    cpu_before = figure(pool, "process_cpu_seconds_total")
    burner = subprocess.Popen(
        [sys.executable, "-c", BURNER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert burner.stdout is not None
        assert burner.stdout.readline() == "burnt\n"
        cpu_live = figure(pool, "process_cpu_seconds_total")
        assert cpu_live >= cpu_before + 0.4
        rss_pool = figure(pool, "process_resident_memory_bytes")
        assert rss_pool > figure(own, "process_resident_memory_bytes") + 1_000_000
        assert figure(pool, "process_open_fds") > figure(own, "process_open_fds")
    finally:
        assert burner.stdin is not None
        burner.stdin.close()
        burner.wait(30)
        assert burner.stdout is not None
        burner.stdout.close()
    cpu_after = figure(pool, "process_cpu_seconds_total")
    assert cpu_after >= cpu_live, "a child's exit never takes its CPU time off the total"
    assert figure(pool, "process_start_time_seconds") == figure(own, "process_start_time_seconds")


def test_every_process_says_which_version_it_runs() -> None:
    for collectors in (pool_collectors(), process_collectors()):
        registry = scrape(*collectors)
        running = value(registry, "loginmetrics_build_info", version=version("loginmetrics"))
        assert running == 1
        assert value(registry, "process_cpu_seconds_total") is not None
