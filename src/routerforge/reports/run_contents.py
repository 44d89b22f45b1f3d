"""What a pipeline run directory holds, for the run report: the models it made (or its config expected), each
head's evaluation (the eval stage's output, else the test metrics recorded at training time), the data reports
and the pipeline stages. Only reads files; a missing or unreadable one reads as absent ("not run").
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..bundle import INFO_FILE, head_data, head_metrics, heads_of, is_bundle
from .document import not_run
from .eval_report import PREDICTIONS_FILE

PIPELINE_FILE = "pipeline.json"


@dataclass
class ModelRun:
    """A model the run made (or should have made): a per-task model or the multitask bundle."""

    key: str  # "bundle" or "models/<task>": its place in the run directory
    path: Path
    info: dict | None  # None: expected by the config, not there
    tasks: list[str]

    @property
    def name(self) -> str:
        """The model's directory name."""
        return self.path.name

    @property
    def is_bundle(self) -> bool:
        """Whether it is a multitask bundle (from its routerforge.json)."""
        return bool(self.info and is_bundle(self.info))


@dataclass
class Evaluation:
    """One head's evaluation: its metrics, where they come from, its predictions."""

    metrics: dict  # {"classification"?, "detection"?, "spans"?, "latency"?, "evaluated_on"?}
    source: str  # where the numbers come from
    predictions: list[dict] | None = None
    directory: Path | None = None


def read_json(path: Path) -> Any:
    """A JSON file's content, or None when it is missing or unreadable."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def discover_models(run_dir: Path, config) -> list[ModelRun]:
    """Per-task models (``models/*``) and the bundle, plus those the config's training mode expects but the run
    directory lacks (shown as "not run")."""
    tasks = list(config.tasks) if config is not None else []
    mode = config.training.mode if config is not None else None
    found: dict[str, ModelRun] = {}
    models_dir = run_dir / "models"
    if models_dir.is_dir():
        for child in sorted(models_dir.iterdir()):
            info = read_json(child / INFO_FILE) if child.is_dir() else None
            if isinstance(info, dict):
                found[f"models/{child.name}"] = ModelRun(f"models/{child.name}", child, info, list(heads_of(info)))
    if mode in ("per-task", "both"):
        for task in tasks:
            if not any(task in m.tasks for m in found.values()):
                found[f"models/{task}"] = ModelRun(f"models/{task}", models_dir / task, None, [task])
    bundle_info = read_json(run_dir / "bundle" / INFO_FILE)
    if isinstance(bundle_info, dict):
        found["bundle"] = ModelRun("bundle", run_dir / "bundle", bundle_info, list(heads_of(bundle_info)))
    elif mode in ("multitask", "both"):
        found["bundle"] = ModelRun("bundle", run_dir / "bundle", None, tasks)
    order = {t: i for i, t in enumerate(tasks)}
    return sorted(
        found.values(), key=lambda m: (m.key == "bundle", min((order.get(t, 99) for t in m.tasks), default=99), m.key)
    )


def _read_predictions(path: Path) -> list[dict] | None:
    if not path.is_file():
        return None
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            rows.append(json.loads(line))
    return rows


def find_evaluation(run_dir: Path, model: ModelRun, task: str) -> Evaluation | None:
    """``eval/<model>/<task>/`` (``<model>``: ``bundle`` or the model's directory name, also tried as
    ``models-<name>``), else any ``eval/**/metrics.json`` whose ``evaluated_on`` names this model and head;
    without one, the test metrics recorded in ``routerforge.json`` at training time."""
    base = run_dir / "eval"
    candidates = [base / model.name / task, base / model.key.replace("/", "-") / task, base / model.key / task]
    if len(model.tasks) == 1:
        candidates.append(base / model.name)
    directory = next((c for c in candidates if (c / "metrics.json").is_file()), None)
    if directory is None and base.is_dir():
        target = model.path.resolve()
        for metrics_file in sorted(base.rglob("metrics.json")):
            on = (read_json(metrics_file) or {}).get("evaluated_on") or {}
            try:
                same = Path(on.get("model", "")).resolve() == target and on.get("task") == task
            except OSError:
                same = False
            if same:
                directory = metrics_file.parent
                break
    if directory is not None:
        metrics = read_json(directory / "metrics.json") or {}
        where = (metrics.get("evaluated_on") or {}).get("split") or "given data"
        return Evaluation(
            metrics,
            f"eval stage ({where} split): {directory.relative_to(run_dir)}",
            _read_predictions(directory / PREDICTIONS_FILE),
            directory,
        )
    recorded = head_metrics(model.info or {}, task).get("test")
    if recorded and "error" not in recorded:
        return Evaluation(recorded, "test split, scored at training time (routerforge.json); eval stage not run")
    return None


def data_report(run_dir: Path, models: list[ModelRun], task: str) -> tuple[dict, dict]:
    """``(report, manifest)`` for a task: ``data/<task>.json`` if the pipeline wrote it, else a model's record."""
    doc = read_json(run_dir / "data" / f"{task}.json")
    if isinstance(doc, dict) and ("report" in doc or "manifest" in doc):
        return doc.get("report") or {}, doc.get("manifest") or {}
    if isinstance(doc, dict) and "rows_per_split" in doc:
        return doc, {}
    for model in models:
        if model.info and task in model.tasks:
            data = head_data(model.info, task)
            return data.get("report") or {}, data.get("manifest") or {}
    return {}, {}


def pipeline_stages(run_dir: Path) -> list[dict] | None:
    """The stage records of pipeline.json, in run order, or None without it."""
    doc = read_json(run_dir / PIPELINE_FILE)
    if doc is None:
        return None
    stages = doc.get("stages", doc) if isinstance(doc, dict) else doc
    if isinstance(stages, dict):
        order = list(doc.get("stage_order") or []) if isinstance(doc, dict) else []
        names = order + [name for name in stages if name not in order]
        rows = []
        for name in names:
            value = stages.get(name)
            if isinstance(value, dict):
                rows.append({"stage": name} | value)
            elif isinstance(value, str):
                rows.append({"stage": name, "status": value})
            elif name in order:
                rows.append({"stage": name, "status": not_run()})
        return rows
    if isinstance(stages, list):
        return [s for s in stages if isinstance(s, dict)]
    return None
