"""The pipeline's closing summary in the terminal: per model and head, test metrics with intervals, ECE and
exports; per stage, wall time and what ran or was skipped (read from ``pipeline.json``)."""

from __future__ import annotations

import json
from pathlib import Path

from rich.table import Table

from ..bundle import INFO_FILE
from .format import headline_metrics, number, value_ci
from .run_contents import PIPELINE_FILE as STATE_FILE


def summary_tables(run_dir: str | Path) -> list[Table]:
    """Per model and head: test rows, headline metrics [95% CI], ECE after calibration, exports; per stage:
    wall time, items run and skipped."""
    run_dir = Path(run_dir)
    state = json.loads((run_dir / STATE_FILE).read_text())
    results = Table(title=f"{state['name']}: test split of every head (95% bootstrap intervals)")
    for column in ("model", "task", "rows", "metrics", "ECE test (after T)", "exports"):
        results.add_column(column)
    for name, entry in state["stages"].get("eval", {}).get("items", {}).items():
        model, task = name.split("/")
        metrics_path = run_dir / entry["path"] / "metrics.json"
        if entry.get("status") != "done" or not metrics_path.is_file():
            continue
        metrics = json.loads(metrics_path.read_text())
        model_dir = run_dir / "bundle" if model == "bundle" else run_dir / "models" / model
        info = json.loads((model_dir / INFO_FILE).read_text()) if (model_dir / INFO_FILE).is_file() else {}
        ece = info.get("calibration", {}).get(task, {}).get("test", {}).get("ece_after")
        exports = (
            ", ".join(
                f"{fmt} (refused: {r['refused']})" if r.get("refused") else f"{fmt} ({r['size_mb']} MB)"
                for fmt, r in info.get("exports", {}).items()
            )
            or "-"
        )
        results.add_row(
            model,
            task,
            str(metrics["evaluated_on"]["rows"]),
            "\n".join(f"{name} {value_ci(m)}" for name, m in headline_metrics(metrics) if name != "PR-AUC"),
            number(ece),
            exports,
        )
    timing = Table(title="stages: wall time of this run, and of the work behind the current outputs")
    for column in ("stage", "status", "this run (s)", "outputs took (s)", "ran", "skipped (unchanged)"):
        timing.add_column(column)
    for stage in state.get("stage_order", state["stages"]):
        record = state["stages"].get(stage)
        if record:
            work = sum(item.get("seconds", 0) for item in record.get("items", {}).values())
            timing.add_row(
                stage,
                record.get("status", "-"),
                f"{record.get('seconds', 0):.1f}",
                f"{work:.1f}",
                ", ".join(record.get("ran", [])) or "-",
                ", ".join(record.get("skipped", [])) or "-",
            )
    return [results, timing]
