"""Reading the shipped alerts and dashboard: their PromQL expressions, parsed by a real PromQL
parser (`promql-parser`, the Rust `promql-parser` crate's Python binding), and the metric names
they select."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import promql_parser
import yaml

from tests.support.router import REPO

MONITORING = REPO / "manifests" / "components" / "monitoring"
RULE_FILE = MONITORING / "prometheusrule.yaml"
DASHBOARD_FILE = MONITORING / "router-policy-sync.json"
# Grafana's `label_values(<series selector>, <label>)` variable query (not PromQL itself)
_LABEL_VALUES = re.compile(r"^label_values\((.+),\s*\w+\)$")


def selected_metrics(expr: str) -> set[str]:
    """Every metric name a PromQL expression selects; ValueError if it does not parse."""
    names: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            names.add(node.name)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


def rule_expressions(rule: Mapping[str, Any]) -> dict[str, str]:
    """alert name -> expression, for every rule of a PrometheusRule object."""
    return {
        entry.get("alert") or entry["record"]: str(entry["expr"])
        for group in rule["spec"]["groups"]
        for entry in group["rules"]
    }


def load_rule(path: Path = RULE_FILE) -> dict[str, Any]:
    (rule,) = (d for d in yaml.safe_load_all(path.read_text()) if d)
    return dict(rule)


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))  # rows hold their panels


def dashboard_queries(dashboard: Mapping[str, Any]) -> dict[str, str]:
    """ "panel title / refId" (or "variable NAME") -> the PromQL it runs."""
    queries: dict[str, str] = {}
    for panel in _panels(dashboard["panels"]):
        for target in panel.get("targets", []):
            queries[f"{panel['title']} / {target['refId']}"] = target["expr"]
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable["type"] != "query":
            continue
        query = variable["query"]
        text = query["query"] if isinstance(query, dict) else query
        match = _LABEL_VALUES.match(text)
        assert match, f"variable {variable['name']}: not a label_values() query: {text}"
        queries[f"variable {variable['name']}"] = match.group(1)
    return queries


def load_dashboard(text: str | None = None) -> dict[str, Any]:
    loaded = json.loads(DASHBOARD_FILE.read_text() if text is None else text)
    assert isinstance(loaded, dict)
    return loaded
