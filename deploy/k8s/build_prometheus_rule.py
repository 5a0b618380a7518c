"""Builds deploy/k8s/components/prometheus-rule/prometheus-rule.yaml (a PrometheusRule) from
deploy/prometheus/alerts.yml, so that Kubernetes and plain Prometheus load the same rules.

    python deploy/k8s/build_prometheus_rule.py           # write prometheus-rule.yaml
    python deploy/k8s/build_prometheus_rule.py --check   # exit 1 if it is out of date
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

DEPLOY_DIR = Path(__file__).resolve().parent.parent
ALERTS_PATH = DEPLOY_DIR / "prometheus" / "alerts.yml"
RULE_PATH = DEPLOY_DIR / "k8s" / "components" / "prometheus-rule" / "prometheus-rule.yaml"

HEADER = """\
# GENERATED from deploy/prometheus/alerts.yml by deploy/k8s/build_prometheus_rule.py: do not
# edit. After changing the rules, run `python deploy/k8s/build_prometheus_rule.py`.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: loginmetrics
  labels:
    app.kubernetes.io/name: loginmetrics
    app.kubernetes.io/instance: loginmetrics
    app.kubernetes.io/component: monitoring
    app.kubernetes.io/part-of: loginmetrics
    app.kubernetes.io/managed-by: kustomize
spec:
"""


class RuleFileError(ValueError):
    """The alerts file has a shape that cannot be nested under the PrometheusRule's spec."""


def prometheus_rule(alerts_text: str) -> str:
    """The PrometheusRule manifest whose ``spec`` is the alerts file.

    The rule file is nested textually (indented under ``spec:``) rather than re-serialised, so
    its comments and block scalars reach the manifest as they were written.
    """
    body = _without_leading_comments(alerts_text.splitlines())
    _check_nestable(body)
    return HEADER + "".join(f"  {line}\n" if line.strip() else "\n" for line in body)


def _without_leading_comments(lines: list[str]) -> list[str]:
    # The file's own header describes the file, not the manifest.
    for index, line in enumerate(lines):
        if line.strip() and not line.startswith("#"):
            return lines[index:]
    return []


def _check_nestable(lines: list[str]) -> None:
    top_level = [line for line in lines if line.strip() and not line[0].isspace()]
    keys = [line.split(":", 1)[0] for line in top_level if not line.startswith("#")]
    if keys != ["groups"]:
        raise RuleFileError(f"expected one top-level key, groups; found {keys}")
    if any(line.startswith(("---", "...")) for line in top_level):
        raise RuleFileError("a rule file with YAML document markers cannot be nested")
    if any("\t" in line for line in lines):
        raise RuleFileError("tabs in a YAML file: indent with spaces")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="fail if the manifest is stale")
    args = parser.parse_args(argv)
    manifest = prometheus_rule(ALERTS_PATH.read_text(encoding="utf-8"))
    if args.check:
        current = RULE_PATH.read_text(encoding="utf-8") if RULE_PATH.exists() else ""
        if current != manifest:
            print(f"{RULE_PATH} is out of date: run {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    RULE_PATH.write_text(manifest, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
