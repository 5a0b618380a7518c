"""The alert rules and the example Prometheus configuration load in promtool, the rule unit
tests (deploy/prometheus/alerts.test.yml) pass and cover every alert both ways, and every alert
links its runbook, waits before paging and tells installs apart."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

from tests.deploy.conftest import (
    ALERTS_FILE,
    ALERTS_TEST_FILE,
    PROMETHEUS_CONFIG,
    alert_rules,
    dashboard_exprs,
    load_yaml,
    recording_rules,
)
from tests.deploy.promql import selectors

PROMTOOL_TIMEOUT_S = 60


def run_promtool(promtool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool, *args], capture_output=True, text=True, timeout=PROMTOOL_TIMEOUT_S, check=False
    )


def test_alert_rules_pass_promtool_check(promtool: str) -> None:
    result = run_promtool(promtool, "check", "rules", str(ALERTS_FILE))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_rules()) + len(recording_rules())} rules found" in result.stdout


def test_alert_rule_unit_tests_pass(promtool: str) -> None:
    result = run_promtool(promtool, "test", "rules", str(ALERTS_TEST_FILE))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_example_prometheus_config_is_valid(promtool: str) -> None:
    result = run_promtool(promtool, "check", "config", str(PROMETHEUS_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard_queries_parse(promtool: str, tmp_path: Path) -> None:
    # promtool parses PromQL only inside rule files: one recording rule per dashboard query,
    # with Grafana's $__rate_interval replaced by a duration.
    exprs = [expr.replace("$__rate_interval", "1m") for expr in dashboard_exprs()]
    rules = [{"record": f"dashboard:query_{index}", "expr": e} for index, e in enumerate(exprs)]
    rule_file = tmp_path / "dashboard-queries.yml"
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = run_promtool(promtool, "check", "rules", str(rule_file))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in result.stdout


def test_every_alert_is_unit_tested_firing_and_silent() -> None:
    firing: set[str] = set()
    silent: set[str] = set()
    for case in load_yaml(ALERTS_TEST_FILE)["tests"]:
        for check in case["alert_rule_test"]:
            (firing if check.get("exp_alerts") else silent).add(check["alertname"])
    alerts = {rule["alert"] for rule in alert_rules()}
    assert alerts - firing == set(), "alerts never shown firing in alerts.test.yml"
    assert alerts - silent == set(), "alerts never shown silent in alerts.test.yml"


def test_every_alert_says_how_bad_and_what_to_do() -> None:
    for rule in alert_rules():
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        annotations = rule["annotations"]
        assert annotations["summary"].strip(), rule["alert"]
        # The description is the runbook: it names something to check or do.
        assert len(annotations["description"].split()) >= 15, rule["alert"]


def test_every_alert_links_its_runbook_section() -> None:
    # docs/operations.md has one section per alert, headed by the alert's name.
    for rule in alert_rules():
        anchor = rule["alert"].lower()
        assert rule["annotations"]["runbook_url"] == f"docs/operations.md#{anchor}"


def duration_seconds(duration: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600}
    return int(duration[:-1]) * units[duration[-1]]


def test_critical_alerts_wait_before_paging() -> None:
    critical = [rule for rule in alert_rules() if rule["labels"]["severity"] == "critical"]
    assert {rule["alert"] for rule in critical} >= {"LoginMetricsNoMetricEvents"}
    for rule in critical:
        assert duration_seconds(rule.get("for", "0s")) >= 60, rule["alert"]


def test_freshness_alert_reads_the_last_events_age() -> None:
    [rule] = [r for r in alert_rules() if r["alert"] == "LoginMetricsNoMetricEvents"]
    assert "metric_event_age_seconds" in rule["expr"]
    assert duration_seconds(rule["for"]) >= 120


def test_lag_alert_is_in_seconds_of_work() -> None:
    [rule] = [r for r in alert_rules() if r["alert"] == "LoginMetricsConsumerLagHigh"]
    assert "consumer_lag_seconds" in rule["expr"]
    [record] = [r for r in recording_rules() if r["record"] in rule["expr"]]
    assert "loginmetrics_messages:rate5m" in record["expr"]


def test_no_rule_names_a_single_install_job() -> None:
    # Two installs (two namespaces, or a namePrefix) must not be merged or missed: no rule
    # selects one fixed job name; roles are picked by a pattern that a prefix keeps matching.
    for rule in alert_rules() + recording_rules():
        for selector in selectors(rule["expr"]):
            operator, job = selector.matchers.get("job", ("=~", ".*"))
            assert operator == "=~", rule
            assert re.fullmatch(job, "blue-loginmetrics-worker") or re.fullmatch(
                job, "blue-loginmetrics-aggregator"
            ), rule
