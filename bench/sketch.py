"""Why the window keeps its distinct counts in Redis' own HyperLogLog: what an in-process sketch
(datasketch.HyperLogLog) would cost per message, against the worker's whole per-message budget.

    python -m bench.sketch --messages 200000

Both figures are measured here, in one run, on the same login stream: the worker's fold of a
batch (validation, bucket increments: everything a worker does per message in Python) and
datasketch's ``update`` of one HyperLogLog per distinct field (user_id and ip, as the window
needs). No broker or Redis is involved. Needs the ``bench`` extra (``pip install datasketch``).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from typing import Any

import msgspec

from loginmetrics.cli.traffic import LoginTraffic
from loginmetrics.worker.fold import fold_batch

BATCH = 10_000


@dataclass(frozen=True, slots=True)
class FakeRecord:
    """A consumed message as fold_batch reads it."""

    _value: bytes
    _offset: int

    def error(self) -> Any:
        return None

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset

    def value(self) -> bytes:
        return self._value

    def timestamp(self) -> tuple[int, int]:
        return (1, 0)


def fold_seconds_per_message(records: list[FakeRecord]) -> float:
    started = time.perf_counter()
    for start in range(0, len(records), BATCH):
        fold_batch(records[start : start + BATCH], {0: start - 1 if start else None})
    return (time.perf_counter() - started) / len(records)


def sketch_seconds_per_message(users: list[bytes], ips: list[bytes]) -> float:
    from datasketch import HyperLogLog  # optional: the bench extra

    user_sketch, ip_sketch = HyperLogLog(p=14), HyperLogLog(p=14)
    started = time.perf_counter()
    for user, ip in zip(users, ips, strict=True):
        user_sketch.update(user)
        ip_sketch.update(ip)
    return (time.perf_counter() - started) / len(users)


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(prog="python -m bench.sketch", description=__doc__)
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    traffic = LoginTraffic(seed=7, users=50_000)
    events = [traffic.login_event() for _ in range(args.messages)]

    encode = msgspec.json.encode
    records = [FakeRecord(encode(event), offset) for offset, event in enumerate(events)]
    users = [str(event["user_id"]).encode() for event in events]
    ips = [str(event["ip"]).encode() for event in events]

    fold = min(fold_seconds_per_message(records) for _ in range(args.repeat))
    sketch = min(sketch_seconds_per_message(users, ips) for _ in range(args.repeat))
    result = {
        "fold_us_per_message": fold * 1e6,
        "datasketch_us_per_message": sketch * 1e6,
        "ratio": sketch / fold,
    }
    print(
        f"worker fold (all per-message Python work): {result['fold_us_per_message']:.2f} us/msg\n"
        f"datasketch HyperLogLog.update x2 (user_id, ip): "
        f"{result['datasketch_us_per_message']:.2f} us/msg\n"
        f"ratio sketch / fold: {result['ratio']:.1f}x"
    )
    return result


if __name__ == "__main__":
    main()
