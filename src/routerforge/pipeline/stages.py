"""The pipeline's stages: data -> train -> calibrate -> eval -> export -> report, as an explicit table
(:data:`STAGES`) of functions that list a stage's items for the engine (:mod:`routerforge.pipeline.engine`).

>>> from routerforge.pipeline import run_pipeline
>>> state = run_pipeline("configs/quickstart.yaml", runs_dir="runs")  # runs/quickstart/... + pipeline.json

The train stage trains through :mod:`routerforge.training.from_config`, as ``routerforge train --config`` does,
and resumes a killed training from its last checkpoint. Calibration runs before evaluation, so the scores
describe the model as it is exported (calibrated).
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

from rich.console import Console

from ..bundle import CARD_FILE, INFO_FILE, heads_of, read_info
from ..config import ProjectConfig, load_config
from ..errors import RouterforgeError
from ..io import write_json
from .engine import Engine, Item, file_hash, tree_hash, value_hash


class Pipeline(Engine):
    """One config's run under ``runs_dir/<name>/``: the engine plus what the stages share (config, data)."""

    def __init__(
        self,
        config: ProjectConfig,
        *,
        config_path: Path | None = None,
        runs_dir: str | Path,
        data_dir: str | None = None,
        allow_pickle: bool = False,
        console: Console | None = None,
    ):
        self.cfg, self.data_dir, self.allow_pickle = config, data_dir, allow_pickle
        self.datasets: dict = {}  # TaskData loaded in this process
        meta = {"name": config.name, "config": str(config_path) if config_path else None, "mode": config.training.mode}
        super().__init__(Path(runs_dir) / config.name, STAGES, meta, console)

    def models(self) -> list[tuple[str, Path, list[str]]]:
        """(short name, directory, tasks) of each model the config's training mode makes."""
        from ..training.from_config import planned_models

        return [(m.name, m.directory, m.tasks) for m in planned_models(self.cfg, run_dir=self.run_dir)]


def _parity_summary(record: dict) -> str:
    """One line per failing head: its parity record (the int8 gate's parts, or the fp32 agreement)."""
    from ..exporters.parity import describe

    return "; ".join(f"{head}: {describe(r)}" for head, r in record["parity"]["heads"].items() if not r["passed"])


def _source_fingerprints(specs: list[str], rules: str | None, adversarial: str | None = None) -> list:
    """What a task's data is: each source's resolved path (or spec) and content hash; the intent rule table's and
    the adversarial rows' (each only when set)."""
    from ..data.sources import URL_SCHEMES, fetch, file_sha256, is_file_spec

    out: list[list[str | None]] = []
    for spec in specs:
        if spec.startswith(URL_SCHEMES):
            out.append([spec, file_sha256(fetch(spec))])
        elif is_file_spec(spec):
            path = Path(spec).expanduser().resolve()
            if not path.is_file():
                raise RouterforgeError("data file not found", source=spec, hint="check the path or --data-dir")
            out.append([str(path), file_sha256(path)])
        else:  # hf: (the hub set by name) and synth: (the generator, covered by the version)
            out.append([spec])
    for name, extra in (("rules", rules), ("adversarial", adversarial)):  # a missing file: the loader names it
        if extra:
            out.append([name, file_sha256(Path(extra)) if Path(extra).is_file() else None])
    return out


# -- stages: each lists its items ---------------------------------------------------------------------------------


def data_items(p: Pipeline) -> list[Item]:
    """One item per task: load, validate and split its data."""
    items = []
    for task in p.cfg.tasks:
        options = p.cfg.load_options(task, p.data_dir)
        inputs = {
            "options": {k: v for k, v in options.items() if k != "data"},
            "sources": _source_fingerprints(options["data"], options.get("rules"), options.get("adversarial")),
        }
        path = p.run_dir / "data" / f"{task}.json"
        items.append(
            Item(
                task,
                inputs,
                path,
                path,
                partial(_load_data, p, task, options),
            )
        )
    return items


def _load_data(p: Pipeline, task: str, options: dict) -> dict:
    from .. import data as rf_data

    options = dict(options)
    task_data = rf_data.load(task, options.pop("data"), **options)
    path = p.run_dir / "data" / f"{task}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, {"manifest": task_data.manifest(), "report": task_data.report})
    p.datasets[task] = task_data
    return {
        "output_hash": file_hash(path),
        "rows": task_data.report["rows_per_split"],
        "fingerprint": task_data.fingerprint,
    }


def _task_data(p: Pipeline, task: str):
    """This run's TaskData, or the rows the recorded data stage names (re-read, hash-checked)."""
    if task not in p.datasets:
        from ..data import task_data_from_manifest

        saved = json.loads((p.run_dir / p.recorded("data", task)["path"]).read_text())
        p.datasets[task] = task_data_from_manifest(saved["manifest"], saved["report"])
    return p.datasets[task]


def train_items(p: Pipeline) -> list[Item]:
    """One item per model the training mode makes."""
    cfg = p.cfg
    common = {
        "backbone": cfg.backbone,
        "max_length": cfg.training.max_length,
        "overrides": cfg.training.overrides,
        "seed": cfg.seed,
    }
    items: list[Item] = []
    for name, directory, tasks in p.models():
        bundle = name == "bundle"
        inputs = common | {
            "data": {t: p.recorded("data", t)["output_hash"] for t in tasks},
            "lora": cfg.training.lora if bundle else cfg.lora_for(name),
            "crf": any(cfg.tasks[t].crf for t in tasks),
        }
        if bundle:
            inputs["multitask"] = cfg.multitask.hashed()
            if cfg.multitask.teachers:  # a teacher that changes re-teaches the bundle
                inputs["teachers"] = {h: _model_fingerprint(m, items) for h, m in cfg.multitask.teachers.items()}
            if cfg.multitask.adversarial_from:  # so does the model the attacker's rows come from
                inputs["adversarial_from"] = {"jailbreak": _model_fingerprint(cfg.multitask.adversarial_from, items)}
        elif cfg.tasks[name].overrides:  # only when set: models trained without them keep their hash
            inputs["task_overrides"] = cfg.tasks[name].overrides
        items.append(
            Item(
                name,
                inputs,
                directory,
                directory / INFO_FILE,
                partial(_train, p, name, directory, tasks),
            )
        )
    return items


def _model_fingerprint(path: str, trained_here: list[Item]) -> str | None:
    """A model's identity (a teacher, the attacked model): the input hash of this run's model in that directory
    (known before it trains), else the hash of its routerforge.json (None when missing: training names it)."""
    directory = Path(path).expanduser().resolve()
    planned = {item.path.resolve(): item.input_hash for item in trained_here}
    info = directory / INFO_FILE
    return planned.get(directory) or (file_hash(info) if info.is_file() else None)


def _train(p: Pipeline, name: str, directory: Path, tasks: list[str]) -> dict:
    """Train one model; a killed run resumes from its last checkpoint when that checkpoint was made for this same
    run (data, settings, length; whatever this stage's record says: an unrelated change may re-run the data
    stage), and starts afresh otherwise."""
    from ..training.from_config import PlannedModel, train_planned
    from ..training.setup import CHECKPOINTS

    found = any((directory / CHECKPOINTS).glob("checkpoint-*"))
    if found:
        p.console.print(f"  {name}: checkpoints of an interrupted run: resuming if made for this run", highlight=False)
    result = train_planned(
        p.cfg,
        PlannedModel(name, directory, tasks),
        {t: _task_data(p, t) for t in tasks},
        resume="auto",
        allow_pickle=p.allow_pickle,
        console=p.console,
    )
    resumed = result.info["training"]["resumed_from"]
    if found:
        done = f"resumed from {resumed}" if resumed else "trained afresh (the checkpoints were made for another run)"
        p.console.print(f"  {name}: {done}", highlight=False)
    return {
        "output_hash": file_hash(directory / INFO_FILE),
        "resumed": bool(resumed),
        "train_seconds": round(result.seconds, 1),
    }


def calibrate_items(p: Pipeline) -> list[Item]:
    """One item per model: temperatures and the jailbreak threshold at the target FPR."""
    items = []
    for name, directory, _ in p.models():
        inputs = {"model": p.recorded("train", name)["output_hash"], "calibration": p.cfg.calibration}
        items.append(
            Item(
                name,
                inputs,
                directory,
                directory / INFO_FILE,
                partial(_calibrate, p, directory),
            )
        )
    return items


def _calibrate(p: Pipeline, directory: Path) -> dict:
    """Refit temperatures, the jailbreak threshold and the PII minimum span score at the config's target FPR,
    unless training already fitted them at that target (idempotent either way: the same validation rows give
    the same fit)."""
    from ..evaluation.calibrator import calibrate

    target = p.cfg.calibration.target_fpr
    info = read_info(directory)
    fitted = info.get("calibration") or {}
    heads = heads_of(info)
    at_target = (
        all(h in fitted for h in heads)
        and ("jailbreak" not in heads or fitted["jailbreak"].get("threshold", {}).get("target_fpr") == target)
        and ("pii" not in heads or "pii_min_score" in info)
    )
    if not at_target:
        calibrate(directory, target, allow_pickle=p.allow_pickle)
    return {"output_hash": file_hash(directory / INFO_FILE), "refit": not at_target, "target_fpr": target}


def eval_items(p: Pipeline) -> list[Item]:
    """One item per model and head: its test split through the runtime."""
    items = []
    for name, directory, tasks in p.models():
        model_hash = p.recorded("calibrate", name)["output_hash"]
        for task in tasks:
            output = p.run_dir / "eval" / name / task
            items.append(
                Item(
                    f"{name}/{task}",
                    {"model": model_hash},
                    output,
                    output / "metrics.json",
                    partial(_evaluate, p, directory, task, output),
                )
            )
    return items


def _evaluate(p: Pipeline, directory: Path, task: str, output: Path) -> dict:
    """The head's own test split, re-read from its manifest: the rows the data stage recorded."""
    from ..evaluation.evaluator import evaluate

    evaluate(directory, output=output, task=task, allow_pickle=p.allow_pickle)
    return {"output_hash": file_hash(output / "metrics.json")}


def export_items(p: Pipeline) -> list[Item]:
    """One item per model: every configured format, then the model card."""
    items = []
    formats: list[str] = list(p.cfg.export.formats)
    for name, directory, _ in p.models():
        inputs = {"model": p.recorded("calibrate", name)["output_hash"], "formats": formats}
        # the model card is written after every format: its presence means the item finished
        items.append(
            Item(
                name,
                inputs,
                directory,
                directory / CARD_FILE,
                partial(_export, p, directory, formats),
            )
        )
    return items


def _export(p: Pipeline, directory: Path, formats: list[str]) -> dict:
    """Every configured format, parity-checked, then the model card beside them. An int8 model that fails
    parity is refused, not fatal: quantisation is an approximation that may not hold for every model (the
    fp32 exports serve it; the record and the report say so). Any other failure stops the run."""
    from ..exporters.exporter import ParityError, export
    from ..reports.model_card import write_model_card

    records = {}
    for fmt in formats:
        try:
            r = export(directory, fmt, allow_pickle=p.allow_pickle)
            records[fmt] = {"file": r["file"], "size_mb": r["size_mb"], "parity": r["parity"]["passed"]}
        except ParityError as e:
            if fmt != "onnx-int8":
                raise
            p.console.print(
                f"  [yellow]{directory.name}: {fmt} refused[/] (failed parity; fp32 serves): "
                f"{_parity_summary(e.parity)}",
                highlight=False,
            )
            records[fmt] = {"refused": "parity", "parity": e.parity["parity"]["heads"]}
    card = write_model_card(directory, p.cfg)
    return {"output_hash": file_hash(directory / INFO_FILE), "model_card": str(card), "formats": records}


def report_items(p: Pipeline) -> list[Item]:
    """The run report, over every evaluation and export."""
    models = p.models()
    inputs = {
        "eval": {f"{m}/{t}": p.recorded("eval", f"{m}/{t}")["output_hash"] for m, _, tasks in models for t in tasks},
        "export": {m: p.recorded("export", m)["output_hash"] for m, _, _ in models},
        "config": p.cfg,
    }
    path = p.run_dir / "report"
    return [Item("report", inputs, path, path, partial(_report, p))]


def _report(p: Pipeline) -> dict:
    """The run report (every model and head, from pipeline.json and eval/); the model cards beside it are
    the export stage's (written from the same routerforge.json)."""
    from ..reports.run_report import write_run_report

    path = Path(write_run_report(p.run_dir, p.cfg))
    cards = [directory / CARD_FILE for _, directory, _ in p.models()]
    return {
        "output_hash": value_hash([tree_hash(p) for p in (path, *cards)]),
        "report": str(path),
        "model_cards": [str(card) for card in cards],
    }


STAGES = {
    "data": data_items,
    "train": train_items,
    "calibrate": calibrate_items,
    "eval": eval_items,
    "export": export_items,
    "report": report_items,
}


def run_pipeline(
    config: str | Path | ProjectConfig,
    *,
    runs_dir: str | Path,
    data_dir: str | None = None,
    start: str | None = None,
    only: str | None = None,
    allow_pickle: bool = False,
    console: Console | None = None,
) -> dict:
    """Run (or resume) the pipeline of ``config``; returns the ``pipeline.json`` state. See the module docstring."""
    path = None
    if not isinstance(config, ProjectConfig):
        path, config = Path(config).resolve(), load_config(config)
    if (only or start or "data") in ("data", "train"):
        from ..modeling.backbones import check_backbone

        check_backbone(config.backbone)  # before the data stage: a missing backbone is found in seconds
    pipeline = Pipeline(
        config, config_path=path, runs_dir=runs_dir, data_dir=data_dir, allow_pickle=allow_pickle, console=console
    )
    return pipeline.run(start=start, only=only)
