"""How numbers and metrics are written for people: one formatter for every report, card and summary table.

>>> from routerforge.reports.format import number, value_ci, markdown_table, headline_metrics
>>> number(0.81234), number(12.0), number(0.0042), value_ci({"value": 0.8, "ci95": [0.7, 0.9]})
('0.812', '12', '0.0042', '0.800 [0.700, 0.900]')
"""

from __future__ import annotations

from typing import Any

import numpy as np


def number(x: Any) -> str:
    """A value as text: 3 decimals for metrics, integers for counts, ``-`` for missing or non-finite."""
    if x is None:
        return "-"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, (float, np.floating)):
        x = float(x)
        if not np.isfinite(x):
            return "-"
        if x.is_integer() and 1 < abs(x) < 1e6:  # counts, epochs; 0.0 and 1.0 stay metric-shaped
            return str(int(x))
        if abs(x) >= 1000:
            return f"{x:.1f}"
        if 0 < abs(x) < 0.01:
            return f"{x:.3g}"
        return f"{x:.3f}"
    if isinstance(x, dict):
        return ", ".join(f"{k}: {number(v)}" for k, v in x.items()) or "-"
    if isinstance(x, (list, tuple)):
        return ", ".join(number(v) for v in x) or "-"
    return str(x)


def ci(m: dict | None) -> str:
    """``[lo, hi]`` of a ``{value, ci95}`` metric, ``-`` without an interval."""
    bounds = (m or {}).get("ci95")
    return f"[{number(bounds[0])}, {number(bounds[1])}]" if bounds else "-"


def value_ci(m: dict | None) -> str:
    """``value [lo, hi]`` of a ``{value, ci95}`` metric."""
    if not m or m.get("value") is None:
        return "-"
    return f"{number(m['value'])} {ci(m)}" if m.get("ci95") else number(m["value"])


def markdown_cell(x: Any) -> str:
    """A value formatted for a Markdown table cell (pipes and newlines escaped)."""
    return number(x).replace("|", "\\|").replace("\n", " ")


def markdown_table(header: list[str], rows: list[list[Any]]) -> list[str]:
    """A GitHub-flavoured Markdown table as lines (with a blank line after it)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(markdown_cell(c) for c in row) + " |" for row in rows] + [""]


def headline_metrics(result: dict) -> list[tuple[str, dict]]:
    """``[(name, {value, ci95})]``: the metrics a card, report or summary shows for one evaluation result
    (``{"classification"?, "detection"?, "spans"?}``)."""
    out = []
    if "classification" in result:
        c = result["classification"]
        out += [("accuracy", c.get("accuracy")), ("macro F1", c.get("macro_f1"))]
    if "detection" in result:
        d = result["detection"]
        out += [("ROC-AUC", d.get("roc_auc")), ("PR-AUC", d.get("pr_auc"))]
    if "spans" in result:
        s = result["spans"]
        out += [
            ("span precision (exact)", s.get("micro_precision")),
            ("span recall (exact)", s.get("micro_recall")),
            ("span F1 (exact)", s.get("micro_f1")),
        ]
    return [(name, m) for name, m in out if m]


def primary_metric(task: str, result: dict) -> tuple[str, dict | None]:
    """The one metric a head is judged by: exact-span F1 (PII), ROC-AUC (jailbreak), macro F1 (the rest)."""
    if "spans" in result:
        return "span F1 (exact)", result["spans"].get("micro_f1")
    if task == "jailbreak" and "detection" in result:
        return "ROC-AUC", result["detection"].get("roc_auc")
    if "classification" in result:
        return "macro F1", result["classification"].get("macro_f1")
    return "-", None
