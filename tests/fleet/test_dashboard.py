"""contrib/grafana: the dashboard's shape, its host variable, and what it draws.

Grafana itself is not packaged by Debian: its queries are run on a real Prometheus in
tests/integration/test_fleet.py, and their metric names checked against the real daemon there.
"""

from __future__ import annotations

import re

from tests.fleet.contrib import (
    SYNTHETIC,
    dashboard,
    dashboard_exprs,
    dashboard_panels,
    metric_names,
)

# What the issue asks the dashboard to draw, by the metrics that carry it.
REQUIRED = {
    "supervisor_target_status",  # status per target over time
    "supervisor_unit_restarts_total",  # restarts
    "supervisor_recovery_actions_total",  # recovery actions
    "supervisor_probe_duration_seconds_bucket",  # probe latency from the histogram
    "supervisor_breaker_open",  # breaker state
    "supervisor_host_cpu_ratio",
    "supervisor_host_memory_ratio",
    "supervisor_cpu_seconds_total",  # own CPU
    "supervisor_resident_memory_bytes",  # own memory
    "supervisor_alert_outbox_messages",  # alert backlog
}
HOST = 'host=~"$host"'


def test_panels_have_unique_ids_queries_and_the_datasource_variable() -> None:
    panels = dashboard_panels()
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    for panel in panels:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]


def test_panels_do_not_overlap() -> None:
    boxes = [(p["title"], p["gridPos"]) for p in dashboard_panels()]
    cells: dict[tuple[int, int], str] = {}
    for title, pos in boxes:
        assert pos["x"] + pos["w"] <= 24, title
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"{title} overlaps {cells[(x, y)]}"
                cells[(x, y)] = title


def test_the_host_variable_filters_every_query() -> None:
    variables = {v["name"]: v for v in dashboard()["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    host = variables["host"]
    assert host["type"] == "query" and host["multi"] and host["includeAll"]
    for panel in dashboard_panels():
        for target in panel.get("targets", []):
            expr = target["expr"]
            for name in metric_names(expr):
                for match in re.finditer(rf"\b{re.escape(name)}\b(\{{[^}}]*\}})?", expr):
                    assert HOST in (match.group(1) or ""), f"{panel['title']}: {name} in {expr}"


def test_it_draws_what_the_issue_asks_for() -> None:
    used = set().union(*(metric_names(e) for e in dashboard_exprs()))
    assert used >= REQUIRED, REQUIRED - used
    assert used - SYNTHETIC, "no daemon metric at all"
