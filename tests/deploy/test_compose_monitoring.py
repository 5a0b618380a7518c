"""docker-compose.yml serves metrics the way deploy/ expects: the worker and the aggregator
services set LOGINMETRICS_METRICS_PORT, the monitoring profile's Prometheus scrapes exactly them
under the contract's job names with a configuration promtool accepts, and its Grafana shows the
dashboard on that Prometheus. Both compose files publish ports on 127.0.0.1 only, with pinned
images."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.conftest import DASHBOARD_FILE, DEPLOY, REPO, load_yaml
from tests.deploy.metric_contract import AGGREGATOR_JOB, WORKER_JOB

COMPOSE_FILE = REPO / "docker-compose.yml"
COMPOSE_FILES = [COMPOSE_FILE, REPO / "docker-compose.cluster.yml"]
COMPOSE_PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.compose.yml"
GRAFANA_PROVISIONING = DEPLOY / "grafana" / "provisioning"
SERVICE_OF_JOB = {WORKER_JOB: "worker", AGGREGATOR_JOB: "aggregator"}
MONITORING = {"prometheus", "grafana"}
# An image pinned to a release: a version with at least major.minor.patch.
PINNED_TAG = re.compile(r"^v?\d+\.\d+\.\d+([.-][\w.-]+)?$")


def services(path: Path = COMPOSE_FILE) -> dict[str, Any]:
    loaded: dict[str, Any] = load_yaml(path)["services"]
    return loaded


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> host path of each bind mount."""
    return {volume.split(":")[1]: volume.split(":")[0] for volume in service["volumes"]}


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


def test_monitoring_runs_only_under_its_profile() -> None:
    prometheus = services()["prometheus"]
    assert mounts(prometheus) == {
        "/etc/prometheus/prometheus.yml": "./deploy/prometheus/prometheus.compose.yml",
        "/etc/prometheus/alerts.yml": "./deploy/prometheus/alerts.yml",
    }
    for name in MONITORING:
        assert services()[name]["profiles"] == ["monitoring"]
    assert all("profiles" not in s for n, s in services().items() if n not in MONITORING)


def test_grafana_shows_the_dashboard_on_the_compose_prometheus() -> None:
    grafana = services()["grafana"]
    mounted = mounts(grafana)
    assert mounted["/etc/grafana/provisioning"] == "./deploy/grafana/provisioning"
    [(dashboard_path, source)] = [(c, h) for c, h in mounted.items() if c.endswith(".json")]
    assert (REPO / source).resolve() == DASHBOARD_FILE
    [provider] = load_yaml(GRAFANA_PROVISIONING / "dashboards" / "loginmetrics.yml")["providers"]
    assert provider["options"]["path"] == str(Path(dashboard_path).parent)
    [datasource] = load_yaml(GRAFANA_PROVISIONING / "datasources" / "prometheus.yml")["datasources"]
    assert (datasource["type"], datasource["isDefault"]) == ("prometheus", True)
    [published] = services()["prometheus"]["ports"]
    assert datasource["url"] == f"http://prometheus:{published.rsplit(':', 1)[1]}"


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=[p.name for p in COMPOSE_FILES])
def test_ports_are_published_on_the_loopback_only(path: Path) -> None:
    published = [port for s in services(path).values() for port in s.get("ports", [])]
    assert published
    for port in published:
        # Redis has no password here and Kafka no authentication: never on every interface.
        assert port.startswith("127.0.0.1:"), port


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=[p.name for p in COMPOSE_FILES])
def test_third_party_images_are_pinned_to_a_release(path: Path) -> None:
    images = {s["image"] for s in services(path).values() if "build" not in s and "image" in s}
    assert any(image.startswith("redis:") for image in images)
    for image in images:
        assert PINNED_TAG.match(image.rsplit(":", 1)[1]), image


def test_compose_prometheus_config_passes_promtool(promtool: str) -> None:
    check = subprocess.run(
        [promtool, "check", "config", str(COMPOSE_PROMETHEUS_CONFIG)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
