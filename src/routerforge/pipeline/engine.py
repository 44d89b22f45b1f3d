"""``routerforge pipeline CONFIG.yaml``: data -> train -> calibrate -> eval -> export -> report from one YAML.

>>> from routerforge.pipeline import run_pipeline
>>> state = run_pipeline("configs/quickstart.yaml")   # runs/quickstart/{data,bundle,eval,report}/ + pipeline.json

Each stage is a list of *items* (a task's data, one model's training, one head's evaluation, ...). An item's
input hash covers the config sections it reads, the source files' hashes, the hashes recorded by the items it
depends on and the routerforge version. An item whose hash matches the one ``pipeline.json`` records as done,
and whose output is still there, is skipped; ``start`` forces a stage and the later ones, ``only`` runs one
stage. Outputs are written atomically and an item is recorded done only after its output is in place, so a
killed run re-runs just the item it was in; training resumes from that model's last checkpoint.

The train stage trains through :mod:`routerforge.training.from_config`, as ``routerforge train --config`` does.
Calibration runs before evaluation, so the scores describe the model as it is exported (calibrated).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .. import __version__
from ..bundle import CARD_FILE, INFO_FILE
from ..config import ProjectConfig, load_config
from ..errors import RouterforgeError
from ..io import write_json
from ..reports.run_contents import PIPELINE_FILE as STATE_FILE

STAGES = ("data", "train", "calibrate", "eval", "export", "report")


# -- hashing ----------------------------------------------------------------------------------------------------------


def _hash(value) -> str:
    text = json.dumps(value, sort_keys=True, default=lambda v: v.model_dump() if hasattr(v, "model_dump") else str(v))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _file_hash(path: Path) -> str:
    from ..data.sources import file_sha256

    return file_sha256(path)[:16]


def _parity_summary(record: dict) -> str:
    """One line per failing head: label agreement and the task metric against the PyTorch interval."""
    parts = []
    for head, r in record["parity"]["heads"].items():
        if not r["passed"]:
            metric = (
                f", {r['metric']} {r['exported']:.3f} vs torch {r['torch']:.3f} "
                f"[{r['torch_ci95'][0]:.3f}, {r['torch_ci95'][1]:.3f}]"
                if "metric" in r
                else ""
            )
            parts.append(f"{head}: label agreement {r['label_agreement']:.1%}{metric}")
    return "; ".join(parts)


def _source_fingerprints(specs: list[str], rules: str | None) -> list:
    """What a task's data is: each source's resolved path (or spec) and content hash; the intent rule table's."""
    from ..data.sources import URL_SCHEMES, fetch, file_sha256, is_file_spec

    out = []
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
    if rules:  # a missing table is reported by the loader, which names it
        out.append(["rules", file_sha256(Path(rules)) if Path(rules).is_file() else None])
    return out


def _tree_hash(path: Path) -> str:
    """A file's hash, or a directory's (its files' names and hashes)."""
    if path.is_file():
        return _file_hash(path)
    return _hash(sorted([str(p.relative_to(path)), _file_hash(p)] for p in path.rglob("*") if p.is_file()))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


# -- the pipeline -----------------------------------------------------------------------------------------------------


@dataclass
class Item:
    """One unit of a stage: ``run(previous)`` does the work and returns what to record (``output_hash`` at least);
    ``previous`` is the last record of this item when its inputs were the same (e.g. a run killed midway).
    ``path``: what it writes (recorded); ``done_when``: the file whose presence lets it be skipped."""

    name: str
    inputs: dict
    path: Path
    done_when: Path
    run: Callable[[dict | None], dict]

    @property
    def input_hash(self) -> str:
        return _hash(self.inputs | {"routerforge": __version__})


class Pipeline:
    """Runs the stages of one config under ``runs_dir/<name>/`` and keeps ``pipeline.json`` current."""

    def __init__(
        self,
        config: ProjectConfig,
        *,
        config_path: Path | None = None,
        runs_dir: str | Path = "runs",
        data_dir: str | None = None,
        allow_pickle: bool = False,
        console: Console | None = None,
    ):
        self.cfg, self.data_dir, self.allow_pickle = config, data_dir, allow_pickle
        self.run_dir = Path(runs_dir) / config.name
        self.console = console or Console(stderr=True)
        self.datasets: dict = {}  # TaskData loaded in this process
        path = self.run_dir / STATE_FILE
        self.state = json.loads(path.read_text()) if path.is_file() else {"stages": {}}
        self.state |= {
            "name": config.name,
            "config": str(config_path) if config_path else None,
            "routerforge_version": __version__,
            "mode": config.training.mode,
            "stage_order": list(STAGES),
        }

    def models(self) -> list[tuple[str, Path, list[str]]]:
        """(short name, directory, tasks) of each model the config's training mode makes."""
        from ..training.from_config import planned_models

        return [(m.name, m.directory, m.tasks) for m in planned_models(self.cfg, run_dir=self.run_dir)]

    def run(self, start: str | None = None, only: str | None = None) -> dict:
        for flag, stage in (("--from", start), ("--only", only)):
            if stage is not None and stage not in STAGES:
                raise RouterforgeError(f"{flag}: unknown stage {stage!r}", hint=f"choose one of {', '.join(STAGES)}")
        if start and only:
            raise RouterforgeError("--from and --only do not combine", hint="--only STAGE runs one stage")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.state["last_run"] = {"started": _now(), "from": start, "only": only}
        forced_from = STAGES.index(only or start) if (only or start) else len(STAGES)
        for index, stage in enumerate(STAGES):
            if only and stage != only:
                continue
            self._stage(stage, force=index >= forced_from)
        self.state["last_run"]["ended"] = _now()
        self._save()
        return self.state

    def _save(self) -> None:
        self.state["updated"] = _now()
        write_json(self.run_dir / STATE_FILE, self.state)

    def _stage(self, stage: str, force: bool) -> None:
        self.console.rule(f"[bold]{stage}")
        items = getattr(self, f"_{stage}_items")()  # raises before anything is recorded if an input is missing
        record = self.state["stages"].setdefault(stage, {})
        previous = record.get("items", {})
        record |= {
            "status": "running",
            "started": _now(),
            "ended": None,
            "input_hash": _hash(sorted(i.input_hash for i in items)),
            "items": {i.name: previous[i.name] for i in items if i.name in previous},
            "ran": [],
            "skipped": [],
        }
        self._save()
        started = time.perf_counter()
        with Progress(
            TextColumn(f"[bold]{stage}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=self.console,
        ) as progress:
            bar = progress.add_task("", total=len(items))
            for item in items:
                progress.update(bar, description=item.name)
                self._item(stage, item, record, force, progress.console)
                progress.advance(bar)
        record |= {"status": "done", "ended": _now(), "seconds": round(time.perf_counter() - started, 2)}
        self._save()

    def _item(self, stage: str, item: Item, record: dict, force: bool, console: Console) -> None:
        input_hash = item.input_hash
        previous = record["items"].get(item.name)
        if (
            not force
            and previous
            and previous.get("status") == "done"
            and previous.get("input_hash") == input_hash
            and item.done_when.exists()
        ):
            record["skipped"].append(item.name)
            console.print(f"  {stage} {item.name}: skipped (unchanged)", highlight=False)
            return
        entry = {
            "status": "running",
            "input_hash": input_hash,
            "started": _now(),
            "ended": None,
            "path": str(item.path.relative_to(self.run_dir)),
        }
        record["items"][item.name] = entry
        self._save()
        started = time.perf_counter()
        try:
            entry |= item.run(previous if previous and previous.get("input_hash") == input_hash else None)
        except BaseException as err:
            entry |= {"status": "failed", "error": f"{type(err).__name__}: {err}", "ended": _now()}
            record["status"] = "failed"
            self._save()
            raise
        entry |= {"status": "done", "ended": _now(), "seconds": round(time.perf_counter() - started, 2)}
        record["ran"].append(item.name)
        self._save()
        console.print(f"  {stage} {item.name}: done in {entry['seconds']:.1f}s", highlight=False)

    def _recorded(self, stage: str, name: str) -> dict:
        """A finished upstream item's record; a clear error when ``--only`` finds it missing."""
        entry = self.state["stages"].get(stage, {}).get("items", {}).get(name)
        if not entry or entry.get("status") != "done" or not (self.run_dir / entry["path"]).exists():
            raise RouterforgeError(
                f"the {stage} stage has no finished output for {name!r}",
                source=str(self.run_dir / STATE_FILE),
                hint=f"run the pipeline without --only (or with --only {stage}) first",
            )
        return entry

    # -- data ----------------------------------------------------------------------------------------------------------

    def _data_items(self) -> list[Item]:
        items = []
        for task in self.cfg.tasks:
            options = self.cfg.load_options(task, self.data_dir)
            inputs = {
                "options": {k: v for k, v in options.items() if k != "data"},
                "sources": _source_fingerprints(options["data"], options.get("rules")),
            }
            path = self.run_dir / "data" / f"{task}.json"
            items.append(
                Item(
                    task,
                    inputs,
                    path,
                    path,
                    lambda _previous, task=task, options=options: self._load_data(task, options),
                )
            )
        return items

    def _load_data(self, task: str, options: dict) -> dict:
        from .. import data as rf_data

        options = dict(options)
        task_data = rf_data.load(task, options.pop("data"), **options)
        path = self.run_dir / "data" / f"{task}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, {"manifest": task_data.manifest(), "report": task_data.report})
        self.datasets[task] = task_data
        return {
            "output_hash": _file_hash(path),
            "rows": task_data.report["rows_per_split"],
            "fingerprint": task_data.fingerprint,
        }

    def _task_data(self, task: str):
        """This run's TaskData, or the rows the recorded data stage names (re-read, hash-checked)."""
        if task not in self.datasets:
            from ..data import task_data_from_manifest

            saved = json.loads((self.run_dir / self._recorded("data", task)["path"]).read_text())
            self.datasets[task] = task_data_from_manifest(saved["manifest"], saved["report"])
        return self.datasets[task]

    # -- train ---------------------------------------------------------------------------------------------------------

    def _train_items(self) -> list[Item]:
        cfg = self.cfg
        common = {
            "backbone": cfg.backbone,
            "max_length": cfg.training.max_length,
            "overrides": cfg.training.overrides,
            "seed": cfg.seed,
        }
        items = []
        for name, directory, tasks in self.models():
            bundle = name == "bundle"
            inputs = common | {
                "data": {t: self._recorded("data", t)["output_hash"] for t in tasks},
                "lora": cfg.training.lora if bundle else cfg.lora_for(name),
                "crf": any(cfg.tasks[t].crf for t in tasks),
            }
            if bundle:
                inputs["multitask"] = cfg.multitask
            elif cfg.tasks[name].overrides:  # only when set: models trained without them keep their hash
                inputs["task_overrides"] = cfg.tasks[name].overrides
            items.append(
                Item(
                    name,
                    inputs,
                    directory,
                    directory / INFO_FILE,
                    lambda previous, name=name, directory=directory, tasks=tasks: self._train(
                        name, directory, tasks, previous
                    ),
                )
            )
        return items

    def _train(self, name: str, directory: Path, tasks: list[str], previous: dict | None) -> dict:
        """Train one model; a run killed during training (same inputs) resumes from its last checkpoint."""
        checkpoints = directory / "checkpoints"
        resume = bool(
            previous
            and previous.get("status") in ("running", "failed")
            and checkpoints.is_dir()
            and any(p.name.startswith("checkpoint-") for p in checkpoints.iterdir())
        )
        if resume:
            self.console.print(f"  resuming {name} from {checkpoints}", highlight=False)
        from ..training.from_config import PlannedModel, train_planned

        result = train_planned(
            self.cfg,
            PlannedModel(name, directory, tasks),
            {t: self._task_data(t) for t in tasks},
            resume=resume,
            allow_pickle=self.allow_pickle,
            console=self.console,
        )
        return {
            "output_hash": _file_hash(directory / INFO_FILE),
            "resumed": resume,
            "train_seconds": round(result.seconds, 1),
        }

    # -- calibrate -----------------------------------------------------------------------------------------------------

    def _calibrate_items(self) -> list[Item]:
        items = []
        for name, directory, _ in self.models():
            inputs = {"model": self._recorded("train", name)["output_hash"], "calibration": self.cfg.calibration}
            items.append(
                Item(
                    name,
                    inputs,
                    directory,
                    directory / INFO_FILE,
                    lambda _previous, directory=directory: self._calibrate(directory),
                )
            )
        return items

    def _calibrate(self, directory: Path) -> dict:
        """Refit temperatures and the jailbreak threshold at the config's target FPR, unless training already
        fitted them at that target (idempotent either way: the same validation rows give the same fit)."""
        from ..evaluation.calibrator import calibrate

        target = self.cfg.calibration.target_fpr
        info = json.loads((directory / INFO_FILE).read_text())
        fitted = info.get("calibration") or {}
        heads = info.get("heads") or {info.get("task"): {}}
        at_target = all(h in fitted for h in heads) and (
            "jailbreak" not in heads or fitted["jailbreak"].get("threshold", {}).get("target_fpr") == target
        )
        if not at_target:
            calibrate(directory, target, allow_pickle=self.allow_pickle)
        return {"output_hash": _file_hash(directory / INFO_FILE), "refit": not at_target, "target_fpr": target}

    # -- eval ----------------------------------------------------------------------------------------------------------

    def _eval_items(self) -> list[Item]:
        items = []
        for name, directory, tasks in self.models():
            model_hash = self._recorded("calibrate", name)["output_hash"]
            for task in tasks:
                output = self.run_dir / "eval" / name / task
                items.append(
                    Item(
                        f"{name}/{task}",
                        {"model": model_hash},
                        output,
                        output / "metrics.json",
                        lambda _previous, directory=directory, task=task, output=output: self._evaluate(
                            directory, task, output
                        ),
                    )
                )
        return items

    def _evaluate(self, directory: Path, task: str, output: Path) -> dict:
        """The head's own test split, re-read from its manifest: the rows the data stage recorded."""
        from ..evaluation.evaluator import evaluate

        evaluate(directory, output=output, task=task, allow_pickle=self.allow_pickle)
        return {"output_hash": _file_hash(output / "metrics.json")}

    # -- export --------------------------------------------------------------------------------------------------------

    def _export_items(self) -> list[Item]:
        items = []
        formats = list(self.cfg.export.formats)
        for name, directory, _ in self.models():
            inputs = {"model": self._recorded("calibrate", name)["output_hash"], "formats": formats}
            # the model card is written after every format: its presence means the item finished
            items.append(
                Item(
                    name,
                    inputs,
                    directory,
                    directory / CARD_FILE,
                    lambda _previous, directory=directory: self._export(directory, formats),
                )
            )
        return items

    def _export(self, directory: Path, formats: list[str]) -> dict:
        """Every configured format, parity-checked, then the model card beside them. An int8 model that fails
        parity is refused, not fatal: quantisation is an approximation that may not hold for every model (the
        fp32 exports serve it; the record and the report say so). Any other failure stops the run."""
        from ..exporters.exporter import ParityError, export
        from ..reports.model_card import write_model_card

        records = {}
        for fmt in formats:
            try:
                r = export(directory, fmt, allow_pickle=self.allow_pickle)
                records[fmt] = {"file": r["file"], "size_mb": r["size_mb"], "parity": r["parity"]["passed"]}
            except ParityError as e:
                if fmt != "onnx-int8":
                    raise
                self.console.print(
                    f"  [yellow]{directory.name}: {fmt} refused[/] (failed parity; fp32 serves): "
                    f"{_parity_summary(e.parity)}",
                    highlight=False,
                )
                records[fmt] = {"refused": "parity", "parity": e.parity["parity"]["heads"]}
        card = write_model_card(directory, self.cfg)
        return {"output_hash": _file_hash(directory / INFO_FILE), "model_card": str(card), "formats": records}

    # -- report --------------------------------------------------------------------------------------------------------

    def _report_items(self) -> list[Item]:
        models = self.models()
        inputs = {
            "eval": {
                f"{m}/{t}": self._recorded("eval", f"{m}/{t}")["output_hash"] for m, _, tasks in models for t in tasks
            },
            "export": {m: self._recorded("export", m)["output_hash"] for m, _, _ in models},
            "config": self.cfg,
        }
        path = self.run_dir / "report"
        return [Item("report", inputs, path, path, lambda _previous: self._report())]

    def _report(self) -> dict:
        """The run report (every model and head, from pipeline.json and eval/); the model cards beside it are
        the export stage's (written from the same routerforge.json)."""
        from ..reports.run_report import write_run_report

        path = Path(write_run_report(self.run_dir, self.cfg))
        cards = [directory / CARD_FILE for _, directory, _ in self.models()]
        return {
            "output_hash": _hash([_tree_hash(p) for p in (path, *cards)]),
            "report": str(path),
            "model_cards": [str(card) for card in cards],
        }


def run_pipeline(
    config: str | Path | ProjectConfig,
    *,
    runs_dir: str | Path = "runs",
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
    pipeline = Pipeline(
        config, config_path=path, runs_dir=runs_dir, data_dir=data_dir, allow_pickle=allow_pickle, console=console
    )
    return pipeline.run(start=start, only=only)


# -- the summary ------------------------------------------------------------------------------------------------------


def _with_ci(metric: dict) -> str:
    ci = metric.get("ci95")
    return f"{metric['value']:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


def headline_with_ci(metrics: dict) -> dict[str, str]:
    """The headline test metrics of one ``metrics.json`` with their 95% bootstrap intervals, as text."""
    out = {}
    if "classification" in metrics:
        c = metrics["classification"]
        out |= {"accuracy": _with_ci(c["accuracy"]), "macro F1": _with_ci(c["macro_f1"])}
    if "detection" in metrics:
        out["ROC AUC"] = _with_ci(metrics["detection"]["roc_auc"])
    if "spans" in metrics:
        out["entity F1"] = _with_ci(metrics["spans"]["micro_f1"])
    return out


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
            "\n".join(f"{k} {v}" for k, v in headline_with_ci(metrics).items()),
            "-" if ece is None else f"{ece:.3f}",
            exports,
        )
    timing = Table(title="stages: wall time of this run, and of the work behind the current outputs")
    for column in ("stage", "status", "this run (s)", "outputs took (s)", "ran", "skipped (unchanged)"):
        timing.add_column(column)
    for stage in STAGES:
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
