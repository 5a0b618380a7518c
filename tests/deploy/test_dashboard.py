"""The Grafana dashboard: its data source is a variable, and it has the panels operators need."""

from __future__ import annotations

from tests.deploy.conftest import dashboard

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
REQUIRED_PANELS = {
    "Throughput by outcome",
    "Consumer lag per partition",
    "Error rate",
    "Active users and unique IPs",
    "Dead letters by error code",
    "Batch apply latency",
    "Aggregator leader",
    "Metric events per minute",
}


def test_datasource_is_a_variable_used_by_every_query() -> None:
    board = dashboard()
    [variable] = [v for v in board["templating"]["list"] if v["name"] == "datasource"]
    assert (variable["type"], variable["query"]) == ("datasource", "prometheus")
    panels = [p for p in board["panels"] if p["type"] != "row"]
    assert panels
    for panel in panels:
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], panel["title"]
        assert all(target["datasource"] == DATASOURCE for target in panel["targets"])


def test_dashboard_has_the_operators_panels() -> None:
    board = dashboard()
    titles = {panel["title"] for panel in board["panels"]}
    assert REQUIRED_PANELS - titles == set()
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    latency = next(p for p in board["panels"] if p["title"] == "Batch apply latency")
    quantiles = [t["expr"].split(",")[0] for t in latency["targets"][:2]]
    assert quantiles == ["histogram_quantile(0.5", "histogram_quantile(0.99"]
