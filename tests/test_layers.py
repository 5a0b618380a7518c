"""The import layers hold: cli > worker | aggregator > window > runtime (pyproject's
[tool.importlinter], checked by `make lint`); and the contract catches a break, in a copy of the
package with one offending import, naming the module and what it imports."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
PACKAGE_FOLDERS = ("runtime", "window", "worker", "aggregator", "cli")
NO_CACHE = shutil.ignore_patterns("__pycache__")


def lint_imports(checkout: Path) -> subprocess.CompletedProcess[str]:
    # Run from the checkout: lint-imports puts it first on sys.path, so `loginmetrics` is the
    # folder whose links name the top-level folders, as the editable install maps it.
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo"],
        cwd=checkout,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def modules_in(checkout: Path) -> int:
    """The package's modules: loginmetrics/'s own and those of the folders it links to."""
    folders = [checkout / folder for folder in PACKAGE_FOLDERS]
    inside = sum(1 for folder in folders for path in folder.rglob("*.py"))
    return inside + len(list((checkout / "loginmetrics").glob("*.py")))


def test_the_repository_keeps_its_layers_over_every_module() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    # Every module is seen through loginmetrics/'s links (a contract over none would hold).
    assert f"Analyzed {modules_in(ROOT)} files" in result.stdout


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A copy of the package's folders, its loginmetrics/ links and the contract."""
    for folder in PACKAGE_FOLDERS:
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=NO_CACHE)
    shutil.copytree(
        ROOT / "loginmetrics", tmp_path / "loginmetrics", symlinks=True, ignore=NO_CACHE
    )
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    ("module", "added", "reported"),
    [
        (
            "worker/fold.py",
            "def _late() -> None:\n    from loginmetrics.aggregator import metrics\n",
            "loginmetrics.worker.fold -> loginmetrics.aggregator.metrics",
        ),
        (
            "aggregator/ticks.py",
            "from loginmetrics.worker import validation\n",
            "loginmetrics.aggregator.ticks -> loginmetrics.worker.validation",
        ),
        (
            "window/layout.py",
            "from ..worker import fold\n",
            "loginmetrics.window.layout -> loginmetrics.worker.fold",
        ),
        (
            "runtime/backoff.py",
            "import loginmetrics.window.layout\n",
            "loginmetrics.runtime.backoff -> loginmetrics.window.layout",
        ),
        (
            "runtime/errors.py",
            "from loginmetrics.cli import main\n",
            "loginmetrics.runtime.errors -> loginmetrics.cli.main",
        ),
    ],
    ids=[
        "worker-to-aggregator-in-a-function",
        "aggregator-to-worker",
        "window-relative",
        "runtime-to-window",
        "runtime-to-cli",
    ],
)
def test_an_import_against_the_layers_fails_naming_module_and_import(
    checkout: Path, module: str, added: str, reported: str
) -> None:
    with (checkout / module).open("a") as source:
        source.write(f"\n\n{added}")
    result = lint_imports(checkout)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 broken" in result.stdout
    assert f"- {reported} (l." in result.stdout
