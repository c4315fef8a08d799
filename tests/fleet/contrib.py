"""The fleet files under contrib/, the Debian tools that check them, and PromQL metric names."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CONTRIB = ROOT / "contrib"
RULES = CONTRIB / "prometheus" / "rules.yml"
RULES_TEST = CONTRIB / "prometheus" / "rules_test.yml"
PROMETHEUS_CONFIG = CONTRIB / "prometheus" / "prometheus.yml"
ALERTMANAGER_CONFIG = CONTRIB / "alertmanager" / "alertmanager.yml"
DASHBOARD = CONTRIB / "grafana" / "sidecar-supervisor.json"
JOB = "sidecar-supervisor"

# Series Prometheus makes itself rather than scraping them from the daemon.
SYNTHETIC = frozenset({"up", "ALERTS", "ALERTS_FOR_STATE"})
# Words of PromQL that look like names but are not metrics.
_KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset", "inf", "nan", "atan2"})
_LABEL_LISTS = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_TOKEN = re.compile(r"\d[\w.]*(?:[eE][+-]?\d+)?|[A-Za-z_:][A-Za-z0-9_:]*")


def tool(name: str) -> str:
    """The path of a Debian tool, or skip saying which package brings it."""
    path = shutil.which(name)
    if path is None:
        package = "prometheus-alertmanager" if name == "amtool" else "prometheus"
        pytest.skip(
            f"{name} is not installed (Debian package {package}; ./scripts/test.sh installs it)"
        )
    return path


def run(
    *args: str, cwd: Path | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a tool; the caller asserts on its exit code and output."""
    return subprocess.run(
        args, cwd=cwd, input=stdin, capture_output=True, text=True, timeout=60, check=False
    )


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def rules() -> list[dict[str, Any]]:
    """Every rule of rules.yml (recording and alerting), in file order."""
    return [rule for group in load_yaml(RULES)["groups"] for rule in group["rules"]]


def alerts() -> list[dict[str, Any]]:
    return [rule for rule in rules() if "alert" in rule]


def recorded() -> set[str]:
    """Names the recording rules define (they are not in the daemon's /metrics)."""
    return {rule["record"] for rule in rules() if "record" in rule}


def dashboard() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return doc


def dashboard_panels() -> list[dict[str, Any]]:
    """Every panel, rows' nested panels included."""
    found = []
    for panel in dashboard()["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def dashboard_exprs() -> list[str]:
    """Every PromQL query of the dashboard: panel targets and the variables' queries."""
    exprs = [t["expr"] for p in dashboard_panels() for t in p.get("targets", [])]
    for var in dashboard()["templating"]["list"]:
        if var["type"] == "query":
            query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            match = re.fullmatch(r"label_values\((.+),\s*\w+\)", query)
            assert match, f"unexpected variable query {query!r}"
            exprs.append(match.group(1))
    return exprs


def grafana_to_promql(expr: str, host: str = ".*") -> str:
    """A dashboard query as Prometheus runs it once Grafana filled in its variables."""
    return expr.replace("$__rate_interval", "1m").replace("$host", host)


def metric_names(expr: str) -> set[str]:
    """The metric names an expression reads (functions, keywords, labels and numbers left out)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", text)
    text = _LABEL_LISTS.sub(" ", text)
    names = set()
    for match in _TOKEN.finditer(text):
        word = match.group()
        if word[0].isdigit() or word.lower() in _KEYWORDS:
            continue
        if text[match.end() :].lstrip().startswith("("):
            continue  # a function
        names.add(word)
    return names
