"""The kustomize base in deploy/k8s: core kinds valid against the Kubernetes schemas (offline,
kubernetes-validate), the CRDs structurally right, and every file agreeing with the others and
with the command line (names, ports, env vars, drain time, the worker group's lag)."""

from __future__ import annotations

import inspect
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import click
import kubernetes_validate
import pytest
import yaml

from deploy.k8s.build_prometheus_rule import ALERTS_PATH, RULE_PATH, main, prometheus_rule
from loginmetrics.cli.main import cli
from loginmetrics.runtime.supervisor import Supervisor
from tests.deploy.conftest import ALERTS_FILE, K8S, load_yaml, load_yaml_documents

# Oldest Kubernetes minor the base is checked against (PodDisruptionBudget policy/v1 is GA
# since 1.21; every field used here exists in 1.29).
KUBERNETES_VERSION = "1.29"
CORE_API_VERSIONS = frozenset({"v1", "apps/v1", "policy/v1"})
EXPECTED_KINDS = {
    "ConfigMap": 1,
    "Secret": 1,
    "Deployment": 2,
    "Service": 2,
    "PodDisruptionBudget": 2,
    "ScaledObject": 1,
    "ServiceMonitor": 1,
    "PrometheusRule": 1,
}
# Input partitions of user-login in the reference deployment; KEDA's maxReplicaCount must equal
# them (more consumers than partitions sit idle).
INPUT_PARTITIONS = 12


def resource_files() -> list[str]:
    files: list[str] = load_yaml(K8S / "kustomization.yaml")["resources"]
    return files


def manifests() -> list[dict[str, Any]]:
    return [doc for name in resource_files() for doc in load_yaml_documents(K8S / name)]


def one(kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        doc
        for doc in manifests()
        if doc["kind"] == kind and (name is None or doc["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers: list[dict[str, Any]] = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def config() -> dict[str, str]:
    data: dict[str, str] = one("ConfigMap")["data"]
    return data


def matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Kubernetes label-selector semantics for matchLabels and the In operator."""
    if any(labels.get(key) != value for key, value in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        assert expression["operator"] == "In", "only In is used here"
        if labels.get(expression["key"]) not in expression["values"]:
            return False
    return True


def cli_envvars(command: click.Command) -> Iterator[str]:
    for param in command.params:
        envvar = getattr(param, "envvar", None)
        if isinstance(envvar, str):
            yield envvar
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            yield from cli_envvars(sub)


WORKER = "loginmetrics-worker"
AGGREGATOR = "loginmetrics-aggregator"


# --- the kustomization ---------------------------------------------------------------------


def test_every_resource_file_exists_and_every_manifest_is_listed() -> None:
    listed = resource_files()
    assert len(listed) == len(set(listed))
    assert all((K8S / name).is_file() for name in listed)
    on_disk = {path.name for path in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert on_disk == set(listed)


def test_base_has_the_expected_objects_and_no_namespace() -> None:
    kinds: dict[str, int] = {}
    for doc in manifests():
        kinds[doc["kind"]] = kinds.get(doc["kind"], 0) + 1
        assert doc["metadata"]["name"].startswith("loginmetrics")
        # Namespace-agnostic: the namespace comes from the overlay or `kubectl -n`.
        assert "namespace" not in doc["metadata"], doc["metadata"]["name"]
    assert kinds == EXPECTED_KINDS


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubectl_kustomize_renders_the_base() -> None:
    result = subprocess.run(
        ["kubectl", "kustomize", str(K8S)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    rendered = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    assert sorted(doc["kind"] for doc in rendered) == sorted(doc["kind"] for doc in manifests())
    images = {container(doc)["image"] for doc in rendered if doc["kind"] == "Deployment"}
    assert images == {"loginmetrics:0.1.0"}
    for doc in rendered:
        if doc["apiVersion"] in CORE_API_VERSIONS:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


# --- core kinds against the Kubernetes schemas ------------------------------------------------


CORE_DOCS = [doc for doc in manifests() if doc["apiVersion"] in CORE_API_VERSIONS]


@pytest.mark.parametrize(
    "doc", CORE_DOCS, ids=[f"{d['kind']}/{d['metadata']['name']}" for d in CORE_DOCS]
)
def test_core_kind_is_valid_against_the_kubernetes_schema(doc: dict[str, Any]) -> None:
    # strict: unknown fields (a misspelt key) fail too.
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_schema_validation_catches_a_misspelt_field() -> None:
    broken = yaml.safe_load(yaml.safe_dump(one("Deployment", WORKER)))
    broken["spec"]["template"]["spec"]["terminationGracePeriod"] = 45
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


# --- the two roles ----------------------------------------------------------------------------


def test_worker_runs_one_process_per_pod_and_leaves_the_count_to_keda() -> None:
    worker = one("Deployment", WORKER)
    assert container(worker)["command"] == ["loginmetrics", "worker", "--processes", "1"]
    assert "replicas" not in worker["spec"]
    # A surge pod could find no free partition, never get ready and stall the rollout.
    assert worker["spec"]["strategy"]["rollingUpdate"]["maxSurge"] == 0


def test_aggregator_runs_a_leader_and_a_standby() -> None:
    aggregator = one("Deployment", AGGREGATOR)
    assert container(aggregator)["command"] == ["loginmetrics", "aggregate"]
    assert aggregator["spec"]["replicas"] == 2
    assert aggregator["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


@pytest.mark.parametrize("name", [WORKER, AGGREGATOR])
def test_grace_period_outlasts_the_drain(name: str) -> None:
    drain = inspect.signature(Supervisor).parameters["drain_timeout_seconds"].default
    grace = one("Deployment", name)["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > drain


@pytest.mark.parametrize("name", [WORKER, AGGREGATOR])
def test_probes_and_service_use_the_configured_metrics_port(name: str) -> None:
    deployment = one("Deployment", name)
    main_container = container(deployment)
    ports = {port["name"]: port["containerPort"] for port in main_container["ports"]}
    assert ports == {"metrics": int(config()["LOGINMETRICS_METRICS_PORT"])}
    liveness = main_container["livenessProbe"]["httpGet"]
    readiness = main_container["readinessProbe"]["httpGet"]
    assert (liveness["path"], liveness["port"]) == ("/healthz", "metrics")
    assert (readiness["path"], readiness["port"]) == ("/readyz", "metrics")
    assert main_container["resources"]["requests"]
    assert main_container["resources"]["limits"]

    service = one("Service", name)
    assert matches({"matchLabels": service["spec"]["selector"]}, _pod_labels(deployment))
    assert [(p["name"], p["targetPort"]) for p in service["spec"]["ports"]] == [
        ("metrics", "metrics")
    ]


@pytest.mark.parametrize("name", [WORKER, AGGREGATOR])
def test_selectors_pick_their_own_pods_only(name: str) -> None:
    other = AGGREGATOR if name == WORKER else WORKER
    deployment = one("Deployment", name)
    for selector in (
        deployment["spec"]["selector"],
        one("PodDisruptionBudget", name)["spec"]["selector"],
    ):
        assert matches(selector, _pod_labels(deployment))
        assert not matches(selector, _pod_labels(one("Deployment", other)))


def _pod_labels(deployment: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = deployment["spec"]["template"]["metadata"]["labels"]
    return labels


@pytest.mark.parametrize("name", [WORKER, AGGREGATOR])
def test_settings_come_from_the_configmap_and_secret(name: str) -> None:
    sources = container(one("Deployment", name))["envFrom"]
    assert [s.get("configMapRef", s.get("secretRef"))["name"] for s in sources] == [
        one("ConfigMap")["metadata"]["name"],
        one("Secret")["metadata"]["name"],
    ]


def test_every_setting_is_an_option_of_the_command_line() -> None:
    envvars = set(cli_envvars(cli))
    secret = one("Secret")["stringData"]
    assert set(config()) - envvars == set()
    assert set(secret) - envvars == set()
    # Secrets live in the Secret only (a key in both would be overridden silently).
    assert set(config()) & set(secret) == set()
    assert {"REDIS_URL", "KAFKA_SASL_PASSWORD"} <= set(secret)
    assert all("CHANGE-ME" in value for value in secret.values()), "example values only"


# --- the CRDs, structurally -------------------------------------------------------------------


def test_scaled_object_scales_the_workers_on_the_groups_lag() -> None:
    scaled = one("ScaledObject")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    spec = scaled["spec"]
    target = spec["scaleTargetRef"]
    assert (target.get("kind", "Deployment"), target["name"]) == ("Deployment", WORKER)
    assert spec["minReplicaCount"] == 1
    assert spec["maxReplicaCount"] == INPUT_PARTITIONS
    [trigger] = spec["triggers"]
    assert trigger["type"] == "kafka"
    metadata = trigger["metadata"]
    # KEDA's trigger metadata is a map of strings: an unquoted `false` or number is rejected.
    assert all(isinstance(value, str) for value in metadata.values()), metadata
    assert metadata["bootstrapServers"] == config()["KAFKA_BOOTSTRAP_SERVERS"]
    assert metadata["consumerGroup"] == config()["LOGINMETRICS_GROUP_ID"]
    assert metadata["topic"] == config()["LOGINMETRICS_INPUT_TOPIC"]
    assert int(metadata["lagThreshold"]) > 0
    assert metadata["allowIdleConsumers"] == "false"
    assert metadata["offsetResetPolicy"] == "earliest"


def test_service_monitor_scrapes_both_services_on_metrics() -> None:
    monitor = one("ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    spec = monitor["spec"]
    for name in (WORKER, AGGREGATOR):
        assert matches(spec["selector"], one("Service", name)["metadata"]["labels"]), name
    assert [(e["port"], e["path"]) for e in spec["endpoints"]] == [("metrics", "/metrics")]


def test_prometheus_rule_carries_the_alerts_file() -> None:
    rule = one("PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["spec"] == load_yaml(ALERTS_FILE)


def test_committed_prometheus_rule_is_the_generated_one() -> None:
    assert ALERTS_PATH == ALERTS_FILE
    assert RULE_PATH.read_text(encoding="utf-8") == prometheus_rule(
        ALERTS_PATH.read_text(encoding="utf-8")
    )
    assert main(["--check"]) == 0


def test_generation_refuses_a_rule_file_it_cannot_nest() -> None:
    with pytest.raises(ValueError, match="one top-level key"):
        prometheus_rule("groups: []\nextra: 1\n")
