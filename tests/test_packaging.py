"""The built wheel: one top-level import package, ``loginmetrics``, with its Lua scripts, type
marker and the aggregator's live page inside, and the ``loginmetrics`` command."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=280,
    )
    (built,) = out.glob("loginmetrics-*.whl")
    return zipfile.ZipFile(built)


def test_the_wheel_installs_one_top_level_package(wheel: zipfile.ZipFile) -> None:
    names = wheel.namelist()
    top = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top == {"loginmetrics"}
    for package in ("runtime", "window", "worker", "aggregator", "cli"):
        assert f"loginmetrics/{package}/__init__.py" in names
        assert f"loginmetrics/{package}/py.typed" in names
    lua = {name for name in names if name.endswith(".lua")}
    assert "loginmetrics/window/apply_batch.lua" in lua
    assert "loginmetrics/aggregator/claim_window_end.lua" in lua
    page = {name for name in names if name.startswith("loginmetrics/aggregator/page/")}
    assert page == {
        f"loginmetrics/aggregator/page/{name}" for name in ("index.html", "app.js", "style.css")
    }


def test_the_wheel_declares_the_loginmetrics_command(wheel: zipfile.ZipFile) -> None:
    (entry_points,) = [n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt")]
    assert "loginmetrics = loginmetrics.cli.main:main" in wheel.read(entry_points).decode()
