"""The Grafana dashboard: its data source and namespace are variables every query uses, it has
the panels operators need (CPU and RSS included), and each panel shows one unit, the right one
(message rates in msg/s)."""

from __future__ import annotations

from typing import Any

from tests.deploy.conftest import dashboard
from tests.deploy.promql import selectors

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
NAMESPACE_MATCHER = ("=~", "$namespace")
REQUIRED_PANELS = {
    "Throughput by outcome",
    "Consumer lag per partition",
    "Consumer lag in seconds",
    "Error rate",
    "Active users and unique IPs",
    "Dead letters by error code",
    "Batch apply latency",
    "Aggregator leader",
    "Last metric event age",
    "Metric events per minute",
    "CPU",
    "Memory (RSS)",
}


def panels() -> list[dict[str, Any]]:
    return [p for p in dashboard()["panels"] if p["type"] != "row"]


def unit_of_query(expr: str) -> str:
    """The unit a query's values are in, judged from what it computes."""
    if any(s in expr for s in ("histogram_quantile", "_seconds_sum", "age_seconds", "lag_seconds")):
        return "s"
    if "consumer_lag_messages" in expr and "/" in expr:
        return "s"  # lag over consumption rate: seconds of work
    if "process_cpu_seconds_total" in expr:
        return "percentunit"  # CPU seconds per second: 1.0 is one core
    if "_bytes" in expr:
        return "bytes"
    if "error_rate" in expr:
        return "percent"
    if "* 60" in expr:
        return "/min"
    if "rate(" in expr.replace("increase(", "") or "processing_rate" in expr:
        return "/s"
    return "count"


def unit_family(unit: str) -> str:
    if unit.endswith(("/s", "/min")):
        return unit[unit.index("/") :]
    return unit if unit in {"s", "percent", "percentunit", "bytes"} else "count"


def test_datasource_and_namespace_are_variables_used_by_every_query() -> None:
    board = dashboard()
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert (variables["datasource"]["type"], variables["datasource"]["query"]) == (
        "datasource",
        "prometheus",
    )
    namespace = variables["namespace"]
    # All must also match series without a namespace label (an install outside Kubernetes).
    assert (namespace["type"], namespace["includeAll"], namespace["allValue"]) == (
        "query",
        True,
        ".*",
    )
    assert panels()
    for panel in panels():
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE
            for selector in selectors(target["expr"]):
                assert selector.matchers.get("namespace") == NAMESPACE_MATCHER, target["expr"]


def test_dashboard_has_the_operators_panels() -> None:
    titles = [panel["title"] for panel in dashboard()["panels"]]
    assert REQUIRED_PANELS - set(titles) == set()
    ids = [panel["id"] for panel in dashboard()["panels"]]
    assert len(ids) == len(set(ids))
    latency = next(p for p in panels() if p["title"] == "Batch apply latency")
    quantiles = [t["expr"].split(",")[0] for t in latency["targets"][:2]]
    assert quantiles == ["histogram_quantile(0.5", "histogram_quantile(0.99"]


def test_every_panel_shows_one_unit_and_the_right_one() -> None:
    for panel in panels():
        defaults = panel["fieldConfig"]["defaults"]
        # One unit per panel: no override gives some series another unit (a second axis).
        assert all(
            prop["id"] != "unit"
            for override in panel["fieldConfig"]["overrides"]
            for prop in override["properties"]
        ), panel["title"]
        units = {unit_of_query(target["expr"]) for target in panel["targets"]}
        assert units == {unit_family(defaults["unit"])}, panel["title"]


def test_message_rates_are_in_messages_per_second() -> None:
    units = {panel["title"]: panel["fieldConfig"]["defaults"]["unit"] for panel in panels()}
    assert "reqps" not in units.values()
    for title in ("Throughput by outcome", "Dead letters by error code", "Window processing rate"):
        assert units[title] == "count:msg/s", title
    assert units["Consumer lag in seconds"] == "s"
    assert units["Memory (RSS)"] == "bytes"
