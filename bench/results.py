"""Result files and the figures every benchmark reports the same way."""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import confluent_kafka

from bench.stack import RESULTS


def spread(values: Sequence[float]) -> dict[str, float]:
    """Median and min-max of repeated measurements."""
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
    }


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (``p`` in 0..100) of a non-empty sample."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "librdkafka": confluent_kafka.libversion()[0],
        "confluent_kafka": confluent_kafka.version()[0],
        "commit": _git("rev-parse", "--short", "HEAD"),
        "worktree_dirty": bool(_git("status", "--porcelain", "--", "worker", "window")),
    }


def _git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", *args], capture_output=True, text=True, check=True, cwd=RESULTS.parent
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def write(name: str, result: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path


def run_and_report(
    name: str,
    parser: argparse.ArgumentParser,
    run: Callable[[argparse.Namespace], dict[str, Any]],
    report: Callable[[dict[str, Any]], str],
    argv: list[str] | None,
) -> dict[str, Any]:
    """One benchmark run from its command line: the result file ``<name>-<time>.json``, then
    ``report(result)`` and where the file is, printed."""
    result = run(parser.parse_args(argv))
    path = write(name, result)
    print(report(result))
    print(f"  -> {path.relative_to(RESULTS.parent.parent)}")
    return result


def steady_rate(
    samples: Sequence[tuple[float, int]], total: int, lo: float = 0.1, hi: float = 0.9
) -> float:
    """Messages per second between the moments ``lo`` and ``hi`` of ``total`` were done.

    ``samples`` are (time, messages done) observations; crossing times are interpolated.
    Leaving out the first and last tenth keeps process start, group join and the tail of the
    last partitions out of a steady-state figure.
    """
    start, end = _crossing(samples, lo * total), _crossing(samples, hi * total)
    if start is None or end is None or end <= start:
        return 0.0
    return (hi - lo) * total / (end - start)


def _crossing(samples: Sequence[tuple[float, int]], level: float) -> float | None:
    previous = None
    for at, done in samples:
        if done >= level:
            if previous is None or done == previous[1]:
                return at
            (t0, n0) = previous
            return t0 + (at - t0) * (level - n0) / (done - n0)
        previous = (at, done)
    return None
