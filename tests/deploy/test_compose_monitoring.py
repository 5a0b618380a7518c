"""docker-compose.yml serves metrics the way deploy/ expects: the worker and the aggregator
services set LOGINMETRICS_METRICS_PORT, and the monitoring profile's Prometheus scrapes exactly
them under the contract's job names, with a configuration promtool accepts."""

from __future__ import annotations

import subprocess
from typing import Any

from tests.deploy.conftest import DEPLOY, REPO, load_yaml
from tests.deploy.metric_contract import AGGREGATOR_JOB, WORKER_JOB

COMPOSE_FILE = REPO / "docker-compose.yml"
COMPOSE_PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.compose.yml"
SERVICE_OF_JOB = {WORKER_JOB: "worker", AGGREGATOR_JOB: "aggregator"}


def services() -> dict[str, Any]:
    loaded: dict[str, Any] = load_yaml(COMPOSE_FILE)["services"]
    return loaded


def test_prometheus_scrapes_each_service_on_its_metrics_port() -> None:
    config = load_yaml(COMPOSE_PROMETHEUS_CONFIG)
    targets = {
        job["job_name"]: [t for static in job["static_configs"] for t in static["targets"]]
        for job in config["scrape_configs"]
    }
    expected = {}
    for job, name in SERVICE_OF_JOB.items():
        port = services()[name]["environment"]["LOGINMETRICS_METRICS_PORT"]
        expected[job] = [f"{name}:{port}"]
    assert targets == expected


def test_prometheus_runs_only_under_the_monitoring_profile() -> None:
    prometheus = services()["prometheus"]
    assert prometheus["profiles"] == ["monitoring"]
    mounts = {volume.split(":")[1]: volume.split(":")[0] for volume in prometheus["volumes"]}
    assert mounts == {
        "/etc/prometheus/prometheus.yml": "./deploy/prometheus/prometheus.compose.yml",
        "/etc/prometheus/alerts.yml": "./deploy/prometheus/alerts.yml",
    }
    assert all("profiles" not in s for n, s in services().items() if n != "prometheus")


def test_compose_prometheus_config_passes_promtool(promtool: str) -> None:
    check = subprocess.run(
        [promtool, "check", "config", str(COMPOSE_PROMETHEUS_CONFIG)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
