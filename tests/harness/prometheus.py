"""Reading the shipped Prometheus rules file, and the metric selectors of a PromQL expression
(enough of PromQL to check the rules against the metrics the dashboard exports)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

RULES_FILE = Path(__file__).parents[2] / "services" / "alerts" / "prometheus-rules.yml"

PROMQL_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or",
                   "unless", "offset", "bool"}


@dataclass(frozen=True)
class Selector:
    metric: str
    matchers: tuple[tuple[str, str, str], ...]  # (label, op, value)


def promql_selectors(expr: str) -> tuple[list[Selector], set[str]]:
    """The metric selectors of a PromQL expression, and the labels it groups or matches on."""
    text = re.sub(r"\[[^\]]*\]", " ", expr)  # range durations
    grouping = set()
    for clause in re.findall(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)",
                             text):
        grouping |= {label.strip() for label in clause.split(",") if label.strip()}
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    found = []
    for m in re.finditer(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{[^}]*\})?(\s*\()?", text):
        name, matchers, call = m.groups()
        if call or name in PROMQL_KEYWORDS:
            continue  # a function or an operator
        pairs = tuple(re.findall(r'(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"', matchers or ""))
        found.append(Selector(name, pairs))
    return found, grouping


def prometheus_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES_FILE.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]
