"""Fixtures for the deployment files: their paths, parsed, and the promtool binary.

promtool comes from Debian's prometheus package (`bash stack/prerequisites.sh test`); without
it the promtool tests fail in CI (env CI set) and are skipped elsewhere."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
ALERTS_FILE = DEPLOY / "prometheus" / "alerts.yml"
ALERTS_TEST_FILE = DEPLOY / "prometheus" / "alerts.test.yml"
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
DASHBOARD_FILE = DEPLOY / "grafana" / "loginmetrics.json"
K8S = DEPLOY / "k8s"
PROMTOOL_FALLBACK = Path("/usr/bin/promtool")


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def load_yaml_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def alert_rules() -> list[dict[str, Any]]:
    """Every alerting rule of alerts.yml, in file order."""
    groups = load_yaml(ALERTS_FILE)["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def recording_rules() -> list[dict[str, Any]]:
    """Every recording rule of alerts.yml, in file order."""
    groups = load_yaml(ALERTS_FILE)["groups"]
    return [rule for group in groups for rule in group["rules"] if "record" in rule]


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD_FILE.read_text(encoding="utf-8"))
    return loaded


def dashboard_exprs() -> list[str]:
    """The PromQL of every dashboard target."""
    return [
        target["expr"]
        for panel in dashboard()["panels"]
        for target in panel.get("targets", [])
        if "expr" in target
    ]


@pytest.fixture(scope="session")
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None and os.access(PROMTOOL_FALLBACK, os.X_OK):
        found = str(PROMTOOL_FALLBACK)
    if found is None:
        message = (
            "promtool not found; `bash stack/prerequisites.sh test` installs it "
            "(Debian's prometheus package)"
        )
        if os.environ.get("CI"):
            pytest.fail(f"{message} (a missing tool is a failure in CI)", pytrace=False)
        pytest.skip(message)
    return found
