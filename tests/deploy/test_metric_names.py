"""Every metric the alert rules and the dashboard read is in the contract (metric_contract.py)
or recorded by alerts.yml, with labels it has and a job that exports it; the dashboard shows
every contract metric."""

from __future__ import annotations

import re

import pytest

from tests.deploy.conftest import alert_rules, dashboard_exprs, recording_rules
from tests.deploy.metric_contract import (
    BUCKET_LABEL,
    CONTRACT,
    JOBS,
    TARGET_LABELS,
    by_series_name,
)
from tests.deploy.promql import grouping_labels, metric_names, selectors

ALL_LABELS = TARGET_LABELS | {BUCKET_LABEL} | {label for m in CONTRACT for label in m.labels}


def queries() -> list[tuple[str, str]]:
    """(where, expr) for every alert rule and dashboard target."""
    rules = [(f"alert {rule['alert']}", rule["expr"]) for rule in alert_rules()]
    rules += [(f"record {rule['record']}", rule["expr"]) for rule in recording_rules()]
    panels = [(f"dashboard query {i}", expr) for i, expr in enumerate(dashboard_exprs())]
    return rules + panels


QUERIES = queries()


@pytest.mark.parametrize(("where", "expr"), QUERIES, ids=[where for where, _ in QUERIES])
def test_query_reads_only_contract_metrics(where: str, expr: str) -> None:
    known = by_series_name().keys() | {rule["record"] for rule in recording_rules()}
    names = metric_names(expr)
    assert names, f"{where}: no metric found in {expr!r}"
    assert names <= known, f"{where}: not in the contract: {sorted(names - known)}"


@pytest.mark.parametrize(("where", "expr"), QUERIES, ids=[where for where, _ in QUERIES])
def test_query_labels_exist_on_their_metrics(where: str, expr: str) -> None:
    known = by_series_name()
    for selector in selectors(expr):
        if selector.metric not in known:
            continue  # a recorded series: its labels are those of its rule's grouping
        metric = known[selector.metric]
        allowed = metric.labels | TARGET_LABELS
        if metric.kind == "histogram":
            allowed = allowed | {BUCKET_LABEL}
        assert selector.matchers.keys() <= allowed, f"{where}: {selector}"
        operator, job = selector.matchers.get("job", ("=", None))
        if job is not None:
            # A role is picked by a pattern over job names (one per install): it must match
            # the jobs that export the metric and no other role's.
            assert operator == "=~", f"{where}: a fixed job name misses other installs"
            exporting = {name for name in JOBS if re.fullmatch(job, name)}
            assert exporting, f"{where}: job=~{job!r} matches no job"
            assert exporting <= metric.jobs, f"{where}: job=~{job!r}"
    assert grouping_labels(expr) <= ALL_LABELS, f"{where}: {grouping_labels(expr) - ALL_LABELS}"


def test_dashboard_shows_every_contract_metric() -> None:
    used = set().union(*(metric_names(expr) for expr in dashboard_exprs()))
    missing = [m.name for m in CONTRACT if not (m.series_names & used)]
    assert missing == []


def test_contract_names_are_unique_and_prefixed() -> None:
    names = [metric.name for metric in CONTRACT]
    assert len(names) == len(set(names))
    assert all(name.startswith("loginmetrics_") for name in names if name != "up")
    assert all(metric.jobs <= set(JOBS) for metric in CONTRACT)


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        (
            'sum by (error_code) (rate(loginmetrics_dead_letters_total{job="x"}[5m]))'
            " / scalar(sum(rate(loginmetrics_messages_total[5m]))) > 0.1",
            {"loginmetrics_dead_letters_total", "loginmetrics_messages_total"},
        ),
        ('absent(up{job="loginmetrics-worker"} == 1) or vector(0) offset 5m', {"up"}),
        (
            "histogram_quantile(0.99, sum by (le) (rate(x_seconds_bucket[$__rate_interval]))) * 60",
            {"x_seconds_bucket"},
        ),
        ("a and on (instance) (b == 1) unless ignoring (le) c_total", {"a", "b", "c_total"}),
    ],
)
def test_metric_names_reads_promql(expr: str, expected: set[str]) -> None:
    assert metric_names(expr) == expected
