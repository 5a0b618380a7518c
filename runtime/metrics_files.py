"""A pool's figures on disk (prometheus-client's multiprocess mode): one scrape over every
process's files, and each dead process's files folded into one archive, so that restarts leave
no more files behind and counters never go down."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from pathlib import Path

from prometheus_client.metrics_core import Metric
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

# Kinds whose values are sums over processes: a dead process's share must stay in the total.
SUMMED_KINDS = ("counter", "histogram", "summary")
# prometheus-client names a file <kind>_<pid>.db and reads every *.db; it takes the pid from
# the name only for gauges, so "<kind>_archive.db" is read as one more process's figures.
ARCHIVE_OWNER = "archive"
# Scrapes and archiving in this process take turns: a scrape between writing the archive and
# removing the dead process's file would count its figures twice, and a counter that then goes
# down reads as a reset to Prometheus (rate() jumps).
_turns = threading.Lock()


class PoolFilesCollector(Collector):
    """Every process's figures in ``directory``, read while no archiving is under way."""

    def __init__(self, directory: Path) -> None:
        self._files = MultiProcessCollector(None, path=str(directory))  # type: ignore[no-untyped-call]

    def collect(self) -> Iterable[Metric]:
        with _turns:
            return list(self._files.collect())  # type: ignore[no-untyped-call]


def archive_dead_process(directory: Path, pid: int) -> None:
    """Fold the counters, histograms and summaries of ``pid``, which exited, into the archive
    files and remove all its files; its gauges are simply dropped (a dead process has no level,
    as prometheus-client's mark_process_dead decides for the live* gauges, the only ones here).
    Does nothing when ``pid`` left no files (or they were archived already)."""
    with _turns:
        for kind in SUMMED_KINDS:
            dead = directory / f"{kind}_{pid}.db"
            if dead.exists():
                _fold(dead, directory / f"{kind}_{ARCHIVE_OWNER}.db")
        for gauge in directory.glob(f"gauge_*_{pid}.db"):
            gauge.unlink(missing_ok=True)


def _fold(dead: Path, archive: Path) -> None:
    totals: dict[str, float] = {}
    for path in (archive, dead):
        if not path.exists():
            continue
        entries = MmapedDict.read_all_values_from_file(str(path))  # type: ignore[no-untyped-call]
        for key, value, _timestamp, _position in entries:
            totals[key] = totals.get(key, 0.0) + value
    # Written aside and renamed over the archive: a crash leaves the old archive or the new one,
    # never half of one (the ".partial" name is no *.db, so no scrape reads it).
    partial = archive.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    store = MmapedDict(str(partial))  # type: ignore[no-untyped-call]
    try:
        for key, value in totals.items():
            store.write_value(key, value, 0.0)  # type: ignore[no-untyped-call]
    finally:
        store.close()  # type: ignore[no-untyped-call]
    os.replace(partial, archive)
    dead.unlink()
