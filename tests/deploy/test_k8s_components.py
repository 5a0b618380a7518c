"""The optional parts of deploy/k8s (components/: KEDA, its SASL authentication, ServiceMonitor,
PrometheusRule) and the overlay that uses them, rendered by kustomize on top of the base: each
adds exactly its objects, every name they reference resolves, and their settings hold."""

from __future__ import annotations

from collections import Counter
from functools import cache
from typing import Any

import pytest

from deploy.k8s.build_prometheus_rule import ALERTS_PATH, RULE_PATH, main, prometheus_rule
from tests.deploy.conftest import ALERTS_FILE, K8S, load_yaml, load_yaml_documents
from tests.deploy.kustomize import render, render_overlay
from tests.deploy.test_k8s_manifests import STANDARD_LABELS, base, matches

COMPONENTS = K8S / "components"
OVERLAY = K8S / "overlays" / "with-operators"
SECRET_EXAMPLE = K8S / "examples" / "secret.example.yaml"
# Input partitions of user-login in the reference deployment; KEDA's maxReplicaCount must equal
# them (more consumers than partitions sit idle).
INPUT_PARTITIONS = 12
# Messages per second one worker pod (one process) applies: README, Performance (197,237 msg/s
# from a cold start, 216,517 in a running group, one process, default settings).
WORKER_POD_MESSAGES_PER_S = 200_000

# Each way of rendering: the components on the base, and what they add to it.
RENDERINGS: dict[str, tuple[tuple[str, ...], dict[str, int]]] = {
    "keda": (("keda",), {"ScaledObject": 1}),
    "keda+sasl": (("keda", "keda-sasl"), {"ScaledObject": 1, "TriggerAuthentication": 1}),
    "service-monitor": (("service-monitor",), {"ServiceMonitor": 1}),
    "prometheus-rule": (("prometheus-rule",), {"PrometheusRule": 1}),
}
OVERLAY_ADDS = {"ScaledObject": 1, "ServiceMonitor": 1, "PrometheusRule": 1}


@pytest.fixture(scope="module")
def renderings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    """Every way of rendering, once: each component set on the base, and the overlay."""
    found = {
        name: render_overlay(
            tmp_path_factory.mktemp(name), [K8S / "base"], [COMPONENTS / c for c in components]
        )
        for name, (components, _) in RENDERINGS.items()
    }
    found["overlay"] = overlay()
    return found


@pytest.fixture(params=[*RENDERINGS, "overlay"])
def rendering(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def docs(rendering: str, renderings: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return renderings[rendering]


@cache
def overlay() -> list[dict[str, Any]]:
    return render(OVERLAY)


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == kind]


def the(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    [doc] = of_kind(docs, kind)
    return doc


def example_secret() -> dict[str, Any]:
    [secret] = load_yaml_documents(SECRET_EXAMPLE)
    return secret


# --- every rendering --------------------------------------------------------------------------


def test_components_add_exactly_their_objects(rendering: str, docs: list[dict[str, Any]]) -> None:
    added = OVERLAY_ADDS if rendering == "overlay" else RENDERINGS[rendering][1]
    kinds = Counter(doc["kind"] for doc in docs)
    kinds.subtract(Counter(doc["kind"] for doc in base()))
    assert +kinds == added
    assert "Secret" not in kinds


def test_every_object_carries_the_standard_labels(docs: list[dict[str, Any]]) -> None:
    for doc in docs:
        labels = doc["metadata"]["labels"]
        assert STANDARD_LABELS.items() <= labels.items(), doc["metadata"]["name"]
        assert labels.get("app.kubernetes.io/component"), doc["metadata"]["name"]


def test_every_configmap_and_secret_reference_resolves(docs: list[dict[str, Any]]) -> None:
    configmaps = {doc["metadata"]["name"] for doc in of_kind(docs, "ConfigMap")}
    secret = example_secret()
    secret_keys = set(secret["stringData"])
    for deployment in of_kind(docs, "Deployment"):
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            for source in container["envFrom"]:
                if "configMapRef" in source:
                    assert source["configMapRef"]["name"] in configmaps
                else:
                    assert source["secretRef"]["name"] == secret["metadata"]["name"]
    for auth in of_kind(docs, "TriggerAuthentication"):
        for ref in auth["spec"]["secretTargetRef"]:
            assert (ref["name"], ref["key"]) in {
                (secret["metadata"]["name"], key) for key in secret_keys
            }


def test_scaled_object_reads_the_workers_own_settings(docs: list[dict[str, Any]]) -> None:
    for scaled in of_kind(docs, "ScaledObject"):
        target = scaled["spec"]["scaleTargetRef"]
        [deployment] = [
            d
            for d in of_kind(docs, "Deployment")
            if (d["kind"], d["metadata"]["name"]) == (target["kind"], target["name"])
        ]
        [container] = deployment["spec"]["template"]["spec"]["containers"]
        assert target["envSourceContainerName"] == container["name"]
        config = the(docs, "ConfigMap")["data"]
        [trigger] = scaled["spec"]["triggers"]
        from_env = {k: v for k, v in trigger["metadata"].items() if k.endswith("FromEnv")}
        assert from_env == {
            "bootstrapServersFromEnv": "KAFKA_BOOTSTRAP_SERVERS",
            "consumerGroupFromEnv": "LOGINMETRICS_GROUP_ID",
            "topicFromEnv": "LOGINMETRICS_INPUT_TOPIC",
        }
        assert set(from_env.values()) <= set(config)
        auth = trigger.get("authenticationRef")
        if auth is not None:
            assert auth["name"] in {
                doc["metadata"]["name"] for doc in of_kind(docs, "TriggerAuthentication")
            }


# --- KEDA -------------------------------------------------------------------------------------


def scaled_object() -> dict[str, Any]:
    [doc] = load_yaml_documents(COMPONENTS / "keda" / "worker-scaledobject.yaml")
    return doc


def test_workers_scale_from_one_to_one_per_partition() -> None:
    spec = scaled_object()["spec"]
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (1, INPUT_PARTITIONS)
    [trigger] = spec["triggers"]
    assert trigger["type"] == "kafka"
    metadata = trigger["metadata"]
    # KEDA's trigger metadata is a map of strings: an unquoted `false` or number is rejected.
    assert all(isinstance(value, str) for value in metadata.values()), metadata
    assert metadata["allowIdleConsumers"] == "false"
    assert metadata["offsetResetPolicy"] == "earliest"


def test_lag_threshold_is_tens_of_seconds_of_one_pods_work() -> None:
    [trigger] = scaled_object()["spec"]["triggers"]
    seconds_of_work = int(trigger["metadata"]["lagThreshold"]) / WORKER_POD_MESSAGES_PER_S
    assert 10 <= seconds_of_work <= 60


def test_scale_up_waits_for_lasting_lag_and_at_most_doubles_a_minute() -> None:
    behavior = scaled_object()["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    up = behavior["scaleUp"]
    assert up["stabilizationWindowSeconds"] >= 60
    for policy in up["policies"]:
        assert policy["periodSeconds"] >= 60
        assert (policy["type"], policy["value"]) in {("Pods", 2), ("Percent", 100)}
    down = behavior["scaleDown"]
    assert down["stabilizationWindowSeconds"] >= 300
    assert [(p["type"], p["value"]) for p in down["policies"]] == [("Pods", 1)]


# --- Prometheus Operator ----------------------------------------------------------------------


def test_service_monitor_scrapes_both_services_on_metrics() -> None:
    docs = overlay()
    monitor = the(docs, "ServiceMonitor")
    services = of_kind(docs, "Service")
    assert len(services) == 2
    for service in services:
        assert matches(monitor["spec"]["selector"], service["metadata"]["labels"])
    assert [(e["port"], e["path"]) for e in monitor["spec"]["endpoints"]] == [
        ("metrics", "/metrics")
    ]


def test_overlay_puts_everything_in_its_namespace() -> None:
    namespace = load_yaml(OVERLAY / "kustomization.yaml")["namespace"]
    assert {doc["metadata"].get("namespace") for doc in overlay()} == {namespace}


def test_prometheus_rule_carries_the_alerts_file() -> None:
    rule = the(overlay(), "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["spec"] == load_yaml(ALERTS_FILE)


def test_committed_prometheus_rule_is_the_generated_one() -> None:
    assert ALERTS_PATH == ALERTS_FILE
    assert RULE_PATH == COMPONENTS / "prometheus-rule" / "prometheus-rule.yaml"
    assert RULE_PATH.read_text(encoding="utf-8") == prometheus_rule(
        ALERTS_PATH.read_text(encoding="utf-8")
    )
    assert main(["--check"]) == 0


def test_generation_refuses_a_rule_file_it_cannot_nest() -> None:
    with pytest.raises(ValueError, match="one top-level key"):
        prometheus_rule("groups: []\nextra: 1\n")
