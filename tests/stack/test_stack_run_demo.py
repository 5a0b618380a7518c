"""`make run`'s demo script: Ctrl-C stops the generator, the workers and the aggregator, even when
the reader of its output died of the same Ctrl-C (`make run 2>&1 | tee run.log`). The parts are
stand-ins: no Kafka or Redis needed."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# `loginmetrics` for the demo: the background parts record their pid and wait to be stopped;
# `print` writes metric events until interrupted.
FAKE_LOGINMETRICS = """#!/usr/bin/env bash
case "$1" in
    print) while :; do echo '{"window_size": 1}'; sleep 0.05; done ;;
    *) echo "$$" >>"$PARTS_FILE"; exec sleep 300 ;;
esac
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead: only its parent has not reaped it yet.
    stat = Path(f"/proc/{pid}/stat")
    return not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


@pytest.fixture
def parts_file(tmp_path: Path) -> Iterator[Path]:
    parts = tmp_path / "parts"
    yield parts
    for pid in map(int, parts.read_text().split()) if parts.exists() else []:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_ctrl_c_stops_every_part_after_the_output_reader_died(
    tmp_path: Path, parts_file: Path
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "loginmetrics"
    fake.write_text(FAKE_LOGINMETRICS)
    fake.chmod(0o755)
    demo = subprocess.Popen(
        ["bash", str(ROOT / "stack" / "run-demo.sh")],
        env={
            **os.environ,
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "PARTS_FILE": str(parts_file),
            "RUN_DEMO_LOGS": str(tmp_path / "logs"),
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    assert demo.stdout is not None
    deadline = time.monotonic() + 20
    while len(parts_file.read_text().split() if parts_file.exists() else []) < 3:
        assert time.monotonic() < deadline, "the demo did not start its three parts"
        time.sleep(0.05)
    demo.stdout.readline()  # a metric event came through
    parts = [int(pid) for pid in parts_file.read_text().split()]

    demo.stdout.close()  # tee dies of the Ctrl-C first: nobody reads the output any more
    time.sleep(0.3)
    os.killpg(demo.pid, signal.SIGINT)  # the terminal's Ctrl-C reaches the foreground group
    demo.wait(timeout=30)

    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in parts) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [pid for pid in parts if alive(pid)] == []
