"""The kustomize base as `kubectl apply -k deploy/k8s` renders it: core kinds only (it applies
to a bare cluster), valid against the Kubernetes schemas, no Secret, a generated ConfigMap that
rolls the pods when it changes, and every object agreeing with the others and with the command
line (names, ports, env vars, drain time)."""

from __future__ import annotations

import inspect
import shutil
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import click
import kubernetes_validate
import pytest
import yaml

from loginmetrics.cli.main import cli
from loginmetrics.runtime.supervisor import Supervisor
from tests.deploy.conftest import K8S, load_yaml, load_yaml_documents
from tests.deploy.kustomize import render

# Oldest Kubernetes minor the base is checked against (PodDisruptionBudget policy/v1 is GA
# since 1.21; every field used here exists in 1.29).
KUBERNETES_VERSION = "1.29"
CORE_API_VERSIONS = frozenset({"v1", "apps/v1", "policy/v1"})
BASE_KINDS = {"ConfigMap": 1, "Deployment": 2, "Service": 2, "PodDisruptionBudget": 2}
SECRET_EXAMPLE = K8S / "examples" / "secret.example.yaml"
STANDARD_LABELS = {
    "app.kubernetes.io/name": "loginmetrics",
    "app.kubernetes.io/instance": "loginmetrics",
    "app.kubernetes.io/part-of": "loginmetrics",
    "app.kubernetes.io/managed-by": "kustomize",
}
WORKER = "loginmetrics-worker"
AGGREGATOR = "loginmetrics-aggregator"


@cache
def base() -> list[dict[str, Any]]:
    return render(K8S)


def one(kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        doc
        for doc in base()
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


def example_secret() -> dict[str, Any]:
    [secret] = load_yaml_documents(SECRET_EXAMPLE)
    return secret


def pod_labels(deployment: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = deployment["spec"]["template"]["metadata"]["labels"]
    return labels


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


# --- what a bare cluster gets ----------------------------------------------------------------


def test_base_has_core_kinds_only_and_no_secret_or_namespace() -> None:
    kinds: dict[str, int] = {}
    for doc in base():
        kinds[doc["kind"]] = kinds.get(doc["kind"], 0) + 1
        # A bare cluster knows these API groups; CRDs (KEDA, Prometheus Operator) would fail.
        assert doc["apiVersion"] in CORE_API_VERSIONS, doc["kind"]
        assert doc["metadata"]["name"].startswith("loginmetrics")
        # Namespace-agnostic: the namespace comes from the overlay or `kubectl -n`.
        assert "namespace" not in doc["metadata"], doc["metadata"]["name"]
    # No Secret: applying the base must never overwrite a real password.
    assert kinds == BASE_KINDS


@pytest.mark.parametrize(
    "doc", base(), ids=[f"{d['kind']}/{d['metadata']['name']}" for d in base()]
)
def test_core_kind_is_valid_against_the_kubernetes_schema(doc: dict[str, Any]) -> None:
    # strict: unknown fields (a misspelt key) fail too.
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_schema_validation_catches_a_misspelt_field() -> None:
    broken = yaml.safe_load(yaml.safe_dump(one("Deployment", WORKER)))
    broken["spec"]["template"]["spec"]["terminationGracePeriod"] = 45
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_every_object_and_pod_carries_the_standard_labels() -> None:
    for doc in base():
        labels = doc["metadata"]["labels"]
        assert STANDARD_LABELS.items() <= labels.items(), doc["metadata"]["name"]
        assert labels["app.kubernetes.io/version"] == "0.1.0"
        assert labels["app.kubernetes.io/component"] in {"worker", "aggregator", "config"}
    for name, role in ((WORKER, "worker"), (AGGREGATOR, "aggregator")):
        labels = pod_labels(one("Deployment", name))
        assert STANDARD_LABELS.items() <= labels.items()
        assert labels["app.kubernetes.io/component"] == role


def test_images_are_the_released_tag() -> None:
    images = {container(doc)["image"] for doc in base() if doc["kind"] == "Deployment"}
    assert images == {"loginmetrics:0.1.0"}


# --- settings: a generated ConfigMap and a Secret made by the operator ------------------------


@pytest.mark.parametrize("name", [WORKER, AGGREGATOR])
def test_settings_come_from_the_generated_configmap_and_the_named_secret(name: str) -> None:
    sources = container(one("Deployment", name))["envFrom"]
    configmap = one("ConfigMap")["metadata"]["name"]
    # The generated name carries a hash of the content, and the reference follows it.
    assert configmap.startswith("loginmetrics-config-")
    assert [s.get("configMapRef", s.get("secretRef"))["name"] for s in sources] == [
        configmap,
        example_secret()["metadata"]["name"],
    ]


def test_a_changed_setting_rolls_the_pods(tmp_path: Path) -> None:
    copy = tmp_path / "base"
    shutil.copytree(K8S / "base", copy)
    env_file = copy / "config.env"
    env_file.write_text(
        env_file.read_text(encoding="utf-8").replace(
            "LOGINMETRICS_LOG_LEVEL=INFO", "LOGINMETRICS_LOG_LEVEL=DEBUG"
        ),
        encoding="utf-8",
    )
    changed = render(copy)
    for name in (WORKER, AGGREGATOR):
        [after] = [
            d for d in changed if d["kind"] == "Deployment" and d["metadata"]["name"] == name
        ]
        # A new ConfigMap name in the pod template is a new template: a rollout.
        assert after["spec"]["template"] != one("Deployment", name)["spec"]["template"]
        assert (
            container(after)["envFrom"][0]["configMapRef"]["name"]
            != (container(one("Deployment", name))["envFrom"][0]["configMapRef"]["name"])
        )


def test_every_setting_is_an_option_of_the_command_line() -> None:
    envvars = set(cli_envvars(cli))
    secret = example_secret()["stringData"]
    assert set(config()) - envvars == set()
    assert set(secret) - envvars == set()
    # Secrets live in the Secret only (a key in both would be overridden silently).
    assert set(config()) & set(secret) == set()
    assert {"REDIS_URL", "KAFKA_SASL_PASSWORD"} <= set(secret)
    assert all("CHANGE-ME" in value for value in secret.values()), "example values only"


def test_no_kustomization_makes_or_lists_a_secret() -> None:
    kustomizations = list(K8S.rglob("kustomization.yaml"))
    assert len(kustomizations) >= 6
    for path in kustomizations:
        kustomization = load_yaml(path)
        assert "secretGenerator" not in kustomization, path
        for resource in kustomization.get("resources", []):
            assert "examples" not in Path(resource).parts, path
    kubernetes_validate.validate(example_secret(), KUBERNETES_VERSION, strict=True)


# --- the two roles ----------------------------------------------------------------------------


def test_worker_runs_one_process_per_pod_and_leaves_the_count_to_the_autoscaler() -> None:
    worker = one("Deployment", WORKER)
    # args, not command: the image's ENTRYPOINT (tini, then loginmetrics) stays PID 1.
    assert "command" not in container(worker)
    assert container(worker)["args"] == ["worker", "--processes", "1"]
    assert "replicas" not in worker["spec"]
    # A surge pod could find no free partition, never get ready and stall the rollout.
    assert worker["spec"]["strategy"]["rollingUpdate"]["maxSurge"] == 0


def test_workers_spread_over_nodes_and_zones() -> None:
    worker = one("Deployment", WORKER)
    constraints = worker["spec"]["template"]["spec"]["topologySpreadConstraints"]
    keys = {c["topologyKey"] for c in constraints}
    assert keys == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}
    for constraint in constraints:
        # ScheduleAnyway: a one-node cluster still runs every pod the autoscaler asks for.
        assert constraint["whenUnsatisfiable"] == "ScheduleAnyway"
        assert matches(constraint["labelSelector"], pod_labels(worker))
        assert not matches(constraint["labelSelector"], pod_labels(one("Deployment", AGGREGATOR)))


def test_aggregator_runs_a_leader_and_a_standby() -> None:
    aggregator = one("Deployment", AGGREGATOR)
    assert "command" not in container(aggregator)
    assert container(aggregator)["args"] == ["aggregate"]
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
    assert matches({"matchLabels": service["spec"]["selector"]}, pod_labels(deployment))
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
        assert matches(selector, pod_labels(deployment))
        assert not matches(selector, pod_labels(one("Deployment", other)))
