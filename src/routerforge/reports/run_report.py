"""``runs/NAME/report/``: one page about a whole pipeline run, as self-contained HTML and as Markdown.

>>> from routerforge.config import load_config
>>> from routerforge.evaluation.run_report import write_run_report
>>> write_run_report(Path("runs/local-data"), load_config("local-data.yaml"))      # doctest: +SKIP
PosixPath('runs/local-data/report/index.html')

It reads what the pipeline left in the run directory and re-runs nothing but a short latency check:

- ``models/<task>/`` and ``bundle/``: ``routerforge.json`` (data reports, training log history, calibration
  before/after, jailbreak threshold, exports, versions);
- ``eval/<model>/<task>/``: ``metrics.json`` and ``predictions.jsonl`` from :func:`routerforge.evaluate`
  (per-example probabilities: ROC/PR and reliability curves). Without them the test metrics recorded at
  training time are shown and the curves say "not run";
- ``data/<task>.json`` (split manifest + data report), ``pipeline.json`` (stages), ``latency.json``.

The first screen holds the run's name, date and backbone, one headline row per model and head, the pipeline
stages and the serving latency; per-task sections, training curves, exports, the exact config and the library
versions follow. ``index.html`` embeds every plot as a ``data:`` URI and links nothing outside itself;
``report.md`` has the same tables, with its plots as PNG files in ``img/``. The directory is written beside
its final place and renamed, so a reader never sees half a report.

The document model and its two renderers are in :mod:`.document`; reading the run directory is in
:mod:`.run_contents`; this module measures latency, draws the run's own plots and lays out the sections.
"""

from __future__ import annotations

import html
import json
import platform
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..bundle import head_metrics, heads_of
from ..evaluation.calibration import expected_calibration_error, reliability_bins
from ..evaluation.evaluator import request_latency
from ..io import atomic_directory
from .document import Doc, not_run, render_html, render_markdown, slug
from .eval_report import figure_png, plot_confusion_matrix, plot_roc_pr
from .format import ci, headline_metrics, number, primary_metric, value_ci
from .model_card import data_sources, licence_of
from .run_contents import (
    PIPELINE_FILE,
    Evaluation,
    ModelRun,
    data_report,
    discover_models,
    find_evaluation,
    pipeline_stages,
    read_json,
)

REPORT_DIR = "report"
LATENCY_FILE = "latency.json"
LATENCY_PROMPTS, LATENCY_BUDGET_S, LATENCY_WARMUP = 30, 20.0, 3
N_BINS = 15
MIN_TEST_ROWS = 100  # below this a test metric (and its interval) says little: the summary warns


# ------------------------------------------------------------------------------------------------ latency
def _latency_prompts(n: int = LATENCY_PROMPTS) -> list[str]:
    from ..data.synth import generate

    per_task = [[e.text for e in generate(task, n, seed=7)] for task in ("category", "jailbreak", "intent", "pii")]
    return [text for group in zip(*per_task) for text in group][:n]


def measure_latency(
    models: list[ModelRun], *, budget_s: float = LATENCY_BUDGET_S, n: int = LATENCY_PROMPTS
) -> dict[str, dict]:
    """p50/p99 of ``Router.classify`` (batch 1) on ``n`` short synthetic prompts, per model, with the backend
    it is served with (the fastest export present). Models past the time budget are "skipped"."""
    from ..runtime.engine import Router

    prompts, out, started = _latency_prompts(n), {}, time.perf_counter()
    for model in models:
        if model.info is None:
            continue
        if time.perf_counter() - started > budget_s:
            out[model.key] = {"skipped": f"over the report's {budget_s:g} s latency budget"}
            continue
        try:
            router = Router.load(model.path)
            out[model.key] = request_latency(router, prompts, LATENCY_WARMUP) | {
                "backend": router.backend_name,
                "prompts": "short synthetic",
                "measured_by": "report",
            }
        except Exception as err:  # noqa: BLE001 - a report shows what failed instead of failing
            out[model.key] = {"error": f"{type(err).__name__}: {err}"}
    return out


def _latency_rows(latency: dict, key: str) -> list[dict]:
    """Measurements for one model from a latency dict: ``{key: summary}`` or ``{key: {backend: summary}}``
    (``key``: ``bundle`` or ``models/<task>``; a bare ``<task>`` is accepted for per-task models)."""
    entry = latency.get(key) or latency.get(key.removeprefix("models/"))
    if not isinstance(entry, dict):
        return []
    if any(k in entry for k in ("p50_ms", "skipped", "error")):
        return [entry]
    return [v | {"backend": v.get("backend", backend)} for backend, v in entry.items() if isinstance(v, dict)]


# -------------------------------------------------------------------------------------------------- plots
def _figure(width: float, height: float, ncols: int = 1):
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig, fig.subplots(1, ncols)


def lexical_sentence(record: dict) -> str:
    """What calibration decided about a label head's word n-gram prior (evaluation/lexical_fit.py)."""
    if "val_accuracy" not in record:
        return f"Lexical prior: none ({record.get('note', 'not fitted')})."
    accuracy = record["val_accuracy"]
    best = max(accuracy, key=lambda w: accuracy[w])
    changed = f"{record['rows_fixed']} rows fixed, {record['rows_broken']} broken, p = {number(record['p_value'])}"
    if record["kept"]:
        return (
            f"Lexical prior (word n-grams fitted on train, {record['features']:,} features): weight "
            f"{number(record['weight'])}, chosen on validation, where accuracy went {number(accuracy['0.0'])} -> "
            f"{number(accuracy[str(record['weight'])])} ({changed})."
        )
    return (
        f"Lexical prior: not kept; on validation it reached {number(accuracy[best])} against "
        f"{number(accuracy['0.0'])} for the encoder alone ({changed}; it must be below {number(record['alpha'])})."
    )


def probabilities_before_scaling(p_after: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities at T=1 from served ones: ``p_after = softmax(z / T)``, so ``softmax(T * log p_after)``
    recovers ``softmax(z)`` (exact up to float clipping of tiny probabilities)."""
    from ..numerics import softmax

    return softmax(np.log(np.clip(np.asarray(p_after, dtype=np.float64), 1e-300, None)) * temperature)


def plot_reliability(
    p_before: np.ndarray, p_after: np.ndarray, y: np.ndarray, temperature: float, n_bins: int = N_BINS
) -> bytes:
    """Two reliability diagrams (top-label accuracy vs confidence per bin, bar width = bin): T=1 and T."""
    fig, axes = _figure(10.5, 4.4, 2)
    panels = ((axes[0], p_before, "before (T = 1)"), (axes[1], p_after, f"after (T = {temperature:.3f})"))
    for ax, probs, title in panels:
        bins = reliability_bins(probs, y, n_bins)
        ece = expected_calibration_error(probs, y, n_bins)
        width = 1.0 / n_bins
        lo = np.array([b["lo"] for b in bins])
        acc = np.array([b["accuracy"] if b["count"] else 0.0 for b in bins])
        conf = np.array([b["confidence"] if b["count"] else np.nan for b in bins])
        counts = np.array([b["count"] for b in bins])
        ax.bar(lo, acc, width=width, align="edge", color="#4c72b0", edgecolor="white", label="accuracy")
        ax.bar(
            lo,
            np.where(counts > 0, conf - acc, 0),
            bottom=acc,
            width=width,
            align="edge",
            fill=False,
            edgecolor="#c44e52",
            hatch="//",
            linewidth=0.8,
            label="gap to mean confidence",
        )
        ax.plot([0, 1], [0, 1], "k--", linewidth=1, label="perfect calibration")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("confidence (top label)")
        ax.set_ylabel("accuracy")
        ax.set_title(f"{title}: ECE {ece:.3f}")
        share = ax.twinx()
        used = counts > 0
        share.plot(
            (lo + width / 2)[used],
            (counts / max(counts.sum(), 1))[used],
            color="#55a868",
            marker="o",
            markersize=3,
            linewidth=1,
        )
        share.set_ylim(0, 1)
        share.set_ylabel("share of rows", color="#55a868")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return figure_png(fig)


_EVAL_SKIP = ("runtime", "samples_per_second", "steps_per_second")


def plot_training_curves(log_history: list[dict]) -> bytes | None:
    """Training loss per logging step and every validation loss/metric the Trainer logged, against epochs."""
    train = [(e["epoch"], e["loss"]) for e in log_history if "loss" in e and "epoch" in e]
    evals = [e for e in log_history if any(k.startswith("eval_") for k in e) and "epoch" in e]
    if not train and not evals:
        return None
    keys = sorted({k for e in evals for k in e if k.startswith("eval_") and not k.endswith(_EVAL_SKIP)})
    loss_keys = [k for k in keys if k.endswith("loss")]
    metric_keys = [k for k in keys if k not in loss_keys]
    fig, (ax_loss, ax_metric) = _figure(12, 4.2, 2)
    if train:
        ax_loss.plot(*zip(*train), color="#4c72b0", linewidth=1, alpha=0.8, label="train loss")
    for key in loss_keys:
        points = [(e["epoch"], e[key]) for e in evals if e.get(key) is not None]
        ax_loss.plot(*zip(*points), marker="o", linewidth=1.5, label=key.removeprefix("eval_").replace("_", " "))
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss")
    ax_loss.set_title("Loss (train per logging step; validation per evaluation)")
    ax_loss.legend(fontsize=8)
    for key in metric_keys:
        points = [(e["epoch"], e[key]) for e in evals if e.get(key) is not None]
        if points:
            ax_metric.plot(*zip(*points), marker="o", linewidth=1.5, label=key.removeprefix("eval_").replace("_", " "))
    ax_metric.set_xlabel("epoch")
    ax_metric.set_title("Validation metrics")
    if metric_keys:
        ax_metric.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    else:
        ax_metric.text(0.5, 0.5, "no validation metrics logged", ha="center", transform=ax_metric.transAxes)
    fig.tight_layout()
    return figure_png(fig)


# ------------------------------------------------------------------------------------------------ sections
def _test_rows(metrics: dict) -> int | None:
    if "evaluated_on" in metrics and metrics["evaluated_on"].get("rows") is not None:
        return metrics["evaluated_on"]["rows"]
    for key, count in (("classification", "n"), ("spans", "n_docs")):
        if key in metrics:
            return metrics[key].get(count)
    return None


def _threshold_on_test(model: ModelRun, evaluation: Evaluation | None) -> dict | None:
    detection = (evaluation.metrics.get("detection") or {}) if evaluation else {}
    if detection.get("at_threshold"):
        return detection["at_threshold"]
    return ((model.info or {}).get("calibration") or {}).get("jailbreak", {}).get("threshold_on_test")


def _items_cell(stage: dict) -> str:
    """``3 ran, 1 unchanged`` (+ the first failure) from a pipeline.json stage record."""
    recorded = stage.get("items")
    items = recorded if isinstance(recorded, dict) else {}
    parts = []
    if stage.get("ran") is not None:
        parts.append(f"{len(stage['ran'])} ran")
    if stage.get("skipped"):
        parts.append(f"{len(stage['skipped'])} unchanged")
    failed = [
        f"{name}: {e.get('error', 'failed')}"
        for name, e in items.items()
        if isinstance(e, dict) and e.get("status") == "failed"
    ]
    return ", ".join(parts + failed[:1]) or (f"{len(items)}" if items else "-")


def _stage_row(stage: dict) -> list[Any]:
    """A "Pipeline stages" row: the wall time of the work behind the current outputs (items skipped this time
    keep the seconds they took when they ran). The report stage is still running while it writes this very
    report: its row says "this report", with no time and no item counts yet."""
    name, status = stage.get("stage") or stage.get("name"), stage.get("status")
    input_hash = (stage.get("input_hash") or stage.get("hash") or "-")[:12]
    if name == "report" and status == "running":
        return [name, "this report", "", "", input_hash]
    items = [i for i in (stage.get("items") or {}).values() if isinstance(i, dict)]
    seconds = sum(i.get("seconds") or 0 for i in items) if items else stage.get("seconds")
    return [
        name,
        status,
        f"{seconds:.1f} s" if isinstance(seconds, (int, float)) else seconds,
        _items_cell(stage),
        input_hash,
    ]


def _latency_cell(rows: list[dict]) -> Any:
    ok = [r for r in rows if r.get("p50_ms") is not None]
    if not ok:
        reason = next((r.get("skipped") or r.get("error") for r in rows), None)
        return not_run(reason)
    best = next((r for r in ok if r.get("backend") == "onnx-int8"), ok[0])
    text = f"{best['p50_ms']:.1f} ms"
    return text if best.get("backend") == "onnx-int8" else f"{text} ({best.get('backend')}; no int8 export)"


def _summary_warnings(models: list[ModelRun], evaluations: dict, tasks: list[str]) -> list[str]:
    """What the headline table cannot show: test sets too small to mean anything, PII types the head never
    gets right (a micro F1 hides them), temperatures not fitted."""
    warnings = []
    for task in tasks:
        for model in models:
            if task not in model.tasks or model.info is None:
                continue
            evaluation = evaluations.get((model.key, task))
            metrics = evaluation.metrics if evaluation else {}
            rows = _test_rows(metrics) if metrics else None
            name, m = primary_metric(task, metrics)
            if rows is not None and rows < MIN_TEST_ROWS:
                interval = f" (95% CI {ci(m)})" if m and m.get("ci95") else ""
                warnings.append(
                    f"{model.key} {task}: {name} {number((m or {}).get('value'))}{interval} on {rows} test rows, "
                    f"fewer than {MIN_TEST_ROWS}: too few to mean much; test on more data (a larger split or "
                    "real data) before trusting it."
                )
            spans = metrics.get("spans") or {}
            failed = [t for t in spans.get("per_type") or [] if t.get("f1") == 0]
            if failed:
                listed = ", ".join(f"{t['entity_type']} (0 of {t['support']})" for t in failed)
                warnings.append(
                    f"{model.key} {task}: {len(failed)} of {len(spans['per_type'])} scored entity types have "
                    f"F1 0, none found exactly: {listed}; the micro F1 above is carried by the others."
                )
            calibration = (model.info.get("calibration") or {}).get(task) or {}
            if calibration.get("temperature_status") in ("skipped", "clipped"):
                warnings.append(
                    f"{model.key} {task}: temperature {calibration['temperature_status']}: "
                    f"{calibration.get('temperature_note', '')}."
                )
    return warnings


def _summary(
    doc: Doc, models: list[ModelRun], evaluations: dict, latency: dict, stages, tasks: list[str]
) -> list[dict]:
    doc.heading(2, "Summary", "summary")
    rows: list[list[Any]] = []
    records: list[dict[str, Any]] = []
    for task in tasks:
        for model in models:
            if task not in model.tasks:
                continue
            if model.info is None:
                rows.append([model.key, task, not_run("model missing"), "-", "-", "-", "-", "-", "-"])
                records.append({"model": model.key, "task": task, "status": "not run"})
                continue
            evaluation = evaluations.get((model.key, task))
            metrics = evaluation.metrics if evaluation else {}
            name, m = primary_metric(task, metrics)
            calibration = (model.info.get("calibration") or {}).get(task) or {}
            ece = (calibration.get("test") or calibration.get("val") or {}).get("ece_after")
            threshold = (model.info.get("thresholds") or {}).get("jailbreak") if task == "jailbreak" else None
            at = _threshold_on_test(model, evaluation) if task == "jailbreak" else None
            rows.append(
                [
                    model.key,
                    task,
                    f"{name}: {value_ci(m)}" if m else not_run("no evaluation"),
                    _test_rows(metrics) if metrics else "-",
                    ece if ece is not None else (not_run() if task not in calibration else "-"),
                    ("-" if task != "jailbreak" else threshold if threshold is not None else not_run()),
                    (
                        f"{number(at.get('recall'))} / {number(at.get('fpr'))}"
                        if at
                        else ("-" if task != "jailbreak" else not_run())
                    ),
                    _latency_cell(_latency_rows(latency, model.key)),
                    "eval stage"
                    if evaluation and evaluation.directory
                    else ("training record" if evaluation else not_run()),
                ]
            )
            records.append(
                {
                    "model": model.key,
                    "task": task,
                    "metric": name,
                    "value": (m or {}).get("value"),
                    "ci95": (m or {}).get("ci95"),
                    "test_rows": _test_rows(metrics) if metrics else None,
                    "ece_after": ece,
                    "threshold": threshold,
                    "tpr_at_threshold": (at or {}).get("recall"),
                    "fpr_at_threshold": (at or {}).get("fpr"),
                }
            )
    warnings = _summary_warnings(models, evaluations, tasks)
    if rows:
        doc.table(
            [
                "model",
                "head",
                "headline metric, test [95% CI]",
                "test rows",
                "ECE after T (test)",
                "jailbreak threshold",
                "TPR / FPR at threshold (test)",
                "p50 latency (int8)",
                "numbers from",
            ],
            rows,
            "headline",
        )
    else:
        doc.para(not_run("no models in this run"))
    if warnings:
        doc.heading(3, "Read these numbers with care", "warnings")
        for warning in warnings:
            doc.para(f"**Warning:** {warning}")
    stage_rows = [_stage_row(s) for s in stages or []]
    doc.heading(3, "Pipeline stages", "stages")
    if stage_rows:
        doc.table(["stage", "status", "outputs took", "items", "input hash"], stage_rows)
    else:
        doc.para(not_run(f"no {PIPELINE_FILE}"))
    doc.heading(3, "Serving latency (batch 1, end to end classify)", "latency")
    lat_rows = []
    for model in models:
        for r in _latency_rows(latency, model.key):
            if r.get("p50_ms") is None:
                lat_rows.append(
                    [model.key, r.get("backend", "-"), not_run(r.get("skipped") or r.get("error")), "-", "-", "-"]
                )
            else:
                lat_rows.append(
                    [
                        model.key,
                        r.get("backend"),
                        f"{r['p50_ms']:.1f} ms",
                        f"{r['p99_ms']:.1f} ms",
                        r.get("n"),
                        r.get("prompts", "-"),
                    ]
                )
        if model.info is not None and not _latency_rows(latency, model.key):
            lat_rows.append([model.key, "-", not_run("not measured"), "-", "-", "-"])
    if lat_rows:
        doc.table(["model", "backend", "p50", "p99", "requests", "prompts"], lat_rows)
    else:
        doc.para(not_run("no latency measured"))
    return records


def _data_glance(doc: Doc, run_dir: Path, models: list[ModelRun], tasks: list[str]) -> None:
    """One row per task: split sizes, what cleaning removed, truncation, and the data sets with their licences."""
    doc.heading(3, "Data at a glance", "data-glance")
    rows: list[list[Any]] = []
    for task in tasks:
        report, manifest = data_report(run_dir, models, task)
        if not report and not manifest:
            rows.append([task, not_run("no data report"), "-", "-", "-", "-", "-"])
            continue
        per_split = report.get("rows_per_split") or {}
        moved = report.get("near_duplicates_moved_to_train") or {}
        sources = data_sources(manifest) if manifest else []
        names = list(
            dict.fromkeys(
                (e["source"].name if e["source"] else Path(e["path"]).name) + f" ({licence_of(e)})" for e in sources
            )
        )
        rows.append(
            [
                task,
                per_split.get("train"),
                per_split.get("val"),
                per_split.get("test"),
                f"{report.get('duplicates_removed', 0)} + {(moved.get('val') or 0) + (moved.get('test') or 0)} moved"
                if moved
                else report.get("duplicates_removed"),
                (report.get("rows_longer_than_training_window") or {}).get("train"),
                "; ".join(names) or "-",
            ]
        )
    doc.table(
        [
            "task",
            "train",
            "val",
            "test",
            "duplicates removed + near-duplicates moved to train",
            "train rows truncated",
            "data (licence)",
        ],
        rows,
    )


def _data_section(doc: Doc, task: str, report: dict, manifest: dict) -> None:
    doc.heading(3, f"{task}: data", f"data-{slug(task)}")
    if not report and not manifest:
        doc.para(not_run("no data report"))
        return
    per_split = report.get("rows_per_split") or {}
    labels = report.get("labels_per_split") or {}
    splits = [s for s in ("train", "val", "test") if s in per_split or s in labels]
    moved = report.get("near_duplicates_moved_to_train") or {}
    long_rows = report.get("rows_longer_than_training_window") or {}
    cleaning: list[list[Any]] = [
        ["rows read", report.get("rows_read")],
        ["rows per split", ", ".join(f"{s}: {per_split[s]}" for s in splits if s in per_split) or "-"],
        ["rows dropped by the loader", report.get("rows_dropped_by_loader") or 0],
        ["exact duplicates removed", report.get("duplicates_removed")],
        ["rows with conflicting labels dropped", report.get("conflicting_label_rows_dropped")],
        [
            "near-duplicates moved to train",
            f"val: {moved.get('val', 0)}, test: {moved.get('test', 0)} (TF-IDF cosine >= {moved.get('threshold', '-')})"
            if moved
            else "-",
        ],
        [
            "rows longer than the training window (truncated for training)",
            f"train: {long_rows.get('train', 0)}, val: {long_rows.get('val', 0)} "
            f"(window {long_rows.get('window', '-')} tokens)"
            if long_rows
            else "-",
        ],
    ]
    if report.get("synthetic_train_rows"):
        cleaning.append(["synthetic training rows", report["synthetic_train_rows"]])
    if report.get("rows_in_unused_splits"):
        cleaning.append(["rows in unused splits", report["rows_in_unused_splits"]])
    cleaning += [
        ["labels without test rows", report.get("labels_without_test_support") or "none"],
        ["fingerprint", report.get("fingerprint") or manifest.get("fingerprint")],
    ]
    shown = {
        "rows_read",
        "rows_per_split",
        "labels_per_split",
        "rows_dropped_by_loader",
        "duplicates_removed",
        "conflicting_label_rows_dropped",
        "near_duplicates_moved_to_train",
        "rows_longer_than_training_window",
        "synthetic_train_rows",
        "rows_in_unused_splits",
        "labels_without_test_support",
        "fingerprint",
    }
    cleaning += [[key.replace("_", " "), value] for key, value in report.items() if key not in shown]
    doc.grid(True)
    doc.table(["", "value"], cleaning)
    if labels:
        names = sorted({name for s in splits for name in (labels.get(s) or {})})
        unit = "spans" if task == "pii" else "rows"
        doc.table(
            ["label"] + [f"{s} ({unit})" for s in splits],
            [[name] + [(labels.get(s) or {}).get(name, 0) for s in splits] for name in names],
        )
    doc.grid(False)
    sources = data_sources(manifest) if manifest else []
    if sources:
        doc.table(
            ["source", "rows", "sha256", "licence"],
            [[e["path"], e["rows"], (e["sha256"] or "")[:12] or "-", licence_of(e)] for e in sources],
        )


def _metric_table(evaluation: Evaluation, val: dict) -> list[list[Any]]:
    rows = []
    test = evaluation.metrics
    val_metrics: dict[str, Any] = dict(headline_metrics(val)) if val else {}
    extra = []
    if "classification" in test:
        c = test["classification"]
        extra = [
            ("macro precision", c.get("macro_precision")),
            ("macro recall", c.get("macro_recall")),
            ("weighted F1", c.get("weighted_f1")),
        ]
        val_c = val.get("classification") or {}
        val_metrics |= {
            "macro precision": val_c.get("macro_precision"),
            "macro recall": val_c.get("macro_recall"),
            "weighted F1": val_c.get("weighted_f1"),
        }
    for name, m in headline_metrics(test) + [(n, m) for n, m in extra if m]:
        rows.append([name, m.get("value"), ci(m), value_ci(val_metrics.get(name)) if val_metrics.get(name) else "-"])
    if "classification" in test:
        for key in ("ece", "nll"):
            if test["classification"].get(key) is not None:
                rows.append([key.upper() + " (served probabilities)", test["classification"][key], "-", "-"])
    return rows


def _per_class(doc: Doc, metrics: dict) -> None:
    if "classification" in metrics:
        c = metrics["classification"]
        doc.table(
            ["label", "precision", "recall", "F1", "support"],
            [[r["label"], r["precision"], r["recall"], r["f1"], r["support"]] for r in c.get("per_class", [])],
        )
    if "spans" in metrics:
        s = metrics["spans"]
        doc.table(
            ["entity type", "precision", "recall", "F1", "support", "TP", "FP", "FN"],
            [
                [r["entity_type"], r["precision"], r["recall"], r["f1"], r["support"], r["tp"], r["fp"], r["fn"]]
                for r in s.get("per_type", [])
            ],
        )
        below = s.get("types_below_min_support") or []
        if below:
            doc.para(
                f"Too few gold spans to score (fewer than {s.get('min_support')}): "
                + ", ".join(f"{r['entity_type']} ({r['support']} gold, {r['predicted']} predicted)" for r in below)
            )


def _probability_matrix(predictions: list[dict], names: list[str]) -> tuple[np.ndarray, np.ndarray] | None:
    rows = [p for p in predictions if isinstance(p.get("probs"), dict) and p.get("gold") in names]
    if not rows:
        return None
    probs = np.array([[p["probs"].get(n, 0.0) for n in names] for p in rows], dtype=np.float64)
    probs /= np.clip(probs.sum(axis=1, keepdims=True), 1e-12, None)
    return probs, np.array([names.index(p["gold"]) for p in rows])


def _head_section(doc: Doc, run_dir: Path, model: ModelRun, task: str, evaluation: Evaluation | None) -> None:
    anchor = f"{slug(task)}-{slug(model.key)}"
    doc.heading(3, f"{task}: {model.key}", anchor)
    if model.info is None:
        doc.para(not_run(f"no model at {model.key}"))
        return
    head = heads_of(model.info)[task]
    calibration = (model.info.get("calibration") or {}).get(task) or {}
    if evaluation is None:
        doc.para(not_run("no evaluation: neither an eval stage output nor metrics in routerforge.json"))
    else:
        doc.para(f"Numbers from: {evaluation.source}.")
        val = head_metrics(model.info, task).get("val") or {}
        rows = _metric_table(evaluation, val)
        doc.grid(True)
        if rows:
            doc.table(["metric", "test", "95% CI", "validation [95% CI]"], rows)
        _per_class(doc, evaluation.metrics)
        doc.grid(False)
    metrics = evaluation.metrics if evaluation else {}
    figures = []
    if head["kind"] != "token":
        c = metrics.get("classification") or {}
        png = (
            plot_confusion_matrix(np.array(c["confusion_matrix"]), c["confusion_matrix_labels"])
            if c.get("confusion_matrix")
            else None
        )
        figures.append(
            (
                f"{model.key}-{task}-confusion",
                png,
                f"{task} ({model.key}): confusion matrix on test",
                "no confusion matrix: eval stage not run",
            )
        )
    predictions = evaluation.predictions if evaluation else None
    names = list(head["label_names"])
    matrix = _probability_matrix(predictions, names) if predictions and head["kind"] != "token" else None
    if task == "jailbreak" and "jailbreak" in names:
        png, why = None, "no predictions.jsonl: eval stage not run"
        if matrix is not None:
            probs, y = matrix
            positive = (y == names.index("jailbreak")).astype(int)
            if 0 < positive.sum() < len(positive):
                png = plot_roc_pr(positive, probs[:, names.index("jailbreak")])
            else:
                why = "the evaluated rows hold one class only"
        figures.append(
            (
                f"{model.key}-{task}-roc",
                png,
                (f"{task} ({model.key}): ROC and precision-recall on test (AUC / AP in the legends)"),
                why,
            )
        )
    side_by_side = len(names) <= 4  # a small confusion matrix sits beside the ROC/PR curves
    if side_by_side:
        doc.grid(True)
    for name, png, caption, why in figures:
        doc.image(name, png, caption, why)
    if side_by_side:
        doc.grid(False)

    doc.heading(4, "Calibration")
    if not calibration:
        doc.para(not_run("no temperature fitted"))
    else:
        doc.table(
            [
                "split",
                "rows" if calibration.get("unit") != "token" else "tokens",
                "ECE before",
                "ECE after",
                "NLL before",
                "NLL after",
            ],
            [
                [split, d.get("n"), d.get("ece_before"), d.get("ece_after"), d.get("nll_before"), d.get("nll_after")]
                for split in ("val", "test")
                for d in [calibration.get(split)]
                if d
            ],
        )
        doc.para(
            f"Temperature T = {number(calibration.get('temperature'))}, "
            f"fitted on {calibration.get('fitted_on', 'val')} "
            f"(unit: {calibration.get('unit', 'text')})"
            + (
                f"; {calibration['temperature_status']}: {calibration.get('temperature_note')}."
                if calibration.get("temperature_status") in ("skipped", "clipped")
                else "."
            )
        )
        if calibration.get("lexical"):
            doc.para(lexical_sentence(calibration["lexical"]))
    if head["kind"] == "token":
        doc.para("Reliability diagram: not drawn for span heads (calibration is per token; see the table).")
    elif matrix is not None and calibration:
        probs, y = matrix
        # the temperature the predictions were served with (recorded by evaluate), else the model's current one
        applied = (metrics.get("evaluated_on") or {}).get("temperature")
        temperature = float(applied if applied is not None else calibration.get("temperature", 1.0))
        doc.image(
            f"{model.key}-{task}-reliability",
            plot_reliability(probabilities_before_scaling(probs, temperature), probs, y, temperature),
            f"{task} ({model.key}): reliability on the evaluated rows (n={len(y)}), before and after "
            "temperature scaling",
        )
    else:
        doc.para(not_run("reliability diagram needs predictions.jsonl from the eval stage and a fitted temperature"))
    if task == "jailbreak":
        threshold = (model.info.get("thresholds") or {}).get("jailbreak")
        chosen = calibration.get("threshold") or {}
        at = _threshold_on_test(model, evaluation)
        doc.heading(4, "Jailbreak threshold")
        if threshold is None:
            doc.para(not_run("no threshold chosen; the runtime default 0.5 applies"))
        else:
            doc.para(
                f"Flag when P(jailbreak) >= **{threshold:.4f}**, chosen on validation for a target FPR of "
                f"{number(chosen.get('target_fpr'))}"
                + (
                    ""
                    if chosen.get("resolvable", True)
                    else " (too few benign validation rows to resolve it: the "
                    "threshold admits no validation false positive)"
                )
                + "."
            )
            doc.table(
                ["split", "TPR (recall)", "FPR", "TP", "FP", "FN", "TN"],
                [
                    [split, d.get("recall"), d.get("fpr"), d.get("tp"), d.get("fp"), d.get("fn"), d.get("tn")]
                    for split, d in (("validation", chosen), ("test", at))
                    if d
                ],
            )


def _training_section(doc: Doc, model: ModelRun) -> None:
    doc.heading(3, f"Training: {model.key}", f"training-{slug(model.key)}")
    if model.info is None:
        doc.para(not_run(f"no model at {model.key}"))
        return
    info = model.info
    training = info.get("training") or {}
    backbone = info.get("backbone") or {}
    summary = [
        ["backbone", f"{backbone.get('name')} ({backbone.get('model_type')})"],
        ["LoRA", info.get("lora") or "no (full fine-tuning)"],
        ["max length (tokens)", info.get("max_length")],
    ]
    summary += [[k.replace("_", " "), v] for k, v in training.items() if k != "log_history"]
    if info.get("multitask"):
        summary.append(["task sampling", (info["multitask"] or {}).get("sampling")])
    doc.grid(True)
    doc.table(["", "value"], summary)
    doc.table(["hyperparameter", "value"], [[k, v] for k, v in (info.get("hyperparams") or {}).items()])
    doc.grid(False)
    doc.image(
        f"{model.key}-training",
        plot_training_curves(training.get("log_history") or []),
        f"{model.key}: training and validation curves",
        "no Trainer log history recorded",
    )


def _exports_section(doc: Doc, models: list[ModelRun]) -> None:
    doc.heading(2, "Exports", "exports")
    rows = []
    for model in models:
        if model.info is None:
            continue
        exports = model.info.get("exports") or {}
        if not exports:
            rows.append([model.key, not_run(), "-", "-", "-", "-"])
        for export, e in exports.items():
            parity = e.get("parity") or {}
            rows.append(
                [
                    model.key,
                    export,
                    e.get("file"),
                    e.get("size_mb"),
                    ("passed" if parity.get("passed") else "FAILED" if parity else "-")
                    + (f": {parity['criteria']}" if parity.get("criteria") else ""),
                    e.get("recipe", "-"),
                ]
            )
    if rows:
        doc.table(["model", "format", "file", "size (MB)", "parity", "recipe"], rows)
    else:
        doc.para(not_run("no models"))


def _versions_section(doc: Doc, models: list[ModelRun]) -> None:
    doc.heading(2, "Library versions", "versions")
    recorded = [(m.key, m.info.get("versions") or {}) for m in models if m.info]
    packages = list(dict.fromkeys(p for _, v in recorded for p in v))
    if packages:
        doc.table(
            ["package"] + [key for key, _ in recorded], [[p] + [v.get(p, "-") for _, v in recorded] for p in packages]
        )
    from .. import __version__

    doc.para(f"Report written by routerforge {__version__} on Python {platform.python_version()}.")


# -------------------------------------------------------------------------------------------------- entry
def build_report(run_dir: Path, config, latency: dict | None = None) -> tuple[Doc, str, str, dict]:
    """The report as a :class:`Doc` (title, subtitle and a JSON summary too), without writing anything."""
    run_dir = Path(run_dir)
    models = discover_models(run_dir, config)
    tasks = list(config.tasks) if config is not None else []
    tasks += [t for m in models for t in m.tasks if t not in tasks]
    if latency is None:
        precomputed = read_json(run_dir / LATENCY_FILE)
        latency = precomputed if isinstance(precomputed, dict) else measure_latency(models)
    evaluations = {(m.key, t): find_evaluation(run_dir, m, t) for m in models if m.info for t in m.tasks}

    name = config.name if config is not None else run_dir.name
    infos = [m.info for m in models if m.info]
    trained = max((i.get("created", "") for i in infos), default="") or "not run"
    backbone = (infos[0].get("backbone") or {}) if infos else {}
    mode = config.training.mode if config is not None else ("multitask" if any(m.is_bundle for m in models) else "-")
    subtitle = (
        f"report {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} · trained {trained[:16].replace('T', ' ')}"
        f" · backbone {config.backbone if config is not None else backbone.get('name', '?')}"
        + (f" ({backbone.get('model_type')})" if backbone.get("model_type") else "")
        + f" · mode {mode} · heads {', '.join(tasks) or '-'}"
        + (f" · seed {config.seed}" if config is not None else "")
    )
    doc = Doc()
    links = (
        [("summary", "Summary"), ("data-glance", "Data")]
        + [(f"task-{slug(t)}", t) for t in tasks]
        + [("training", "Training"), ("exports", "Exports"), ("config", "Config"), ("versions", "Versions")]
    )
    doc.raw_html(
        "<nav>" + "".join(f'<a href="#{a}">{html.escape(text)}</a>' for a, text in links) + "</nav>",
        " · ".join(f"[{text}](#{a})" for a, text in links),
    )
    records = _summary(doc, models, evaluations, latency, pipeline_stages(run_dir), tasks)
    _data_glance(doc, run_dir, models, tasks)

    for task in tasks:
        doc.heading(2, f"Task: {task}", f"task-{slug(task)}")
        _data_section(doc, task, *data_report(run_dir, models, task))
        for model in models:
            if task in model.tasks:
                _head_section(doc, run_dir, model, task, evaluations.get((model.key, task)))
    doc.heading(2, "Training", "training")
    if not models:
        doc.para(not_run("no models"))
    for model in models:
        _training_section(doc, model)
    _exports_section(doc, models)
    doc.heading(2, "Config", "config")
    state = read_json(run_dir / PIPELINE_FILE)
    written = Path(state["config"]) if isinstance(state, dict) and state.get("config") else None
    if written is not None and written.is_file():
        doc.para(f"As written: `{written}`")
        doc.pre(written.read_text(encoding="utf-8"), "yaml")
    if config is not None:
        import yaml

        doc.para("Effective configuration (every default filled in):")
        doc.pre(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False), "yaml")
    else:
        doc.para(not_run("no config given"))
    _versions_section(doc, models)
    summary = {"run": name, "models": [m.key for m in models if m.info], "headline": records, "latency": latency}
    return doc, f"routerforge run: {name}", subtitle, summary


def write_run_report(run_dir: Path, config, latency: dict | None = None) -> Path:
    """Write ``run_dir/report/`` (``index.html``, ``report.md``, ``img/*.png``, ``summary.json``) atomically and
    return the path of ``index.html``.

    ``config``: the run's :class:`routerforge.config.ProjectConfig`. ``latency``: precomputed serving latency,
    ``{"bundle" | "models/<task>": {"p50_ms", "p99_ms", "n", "backend"}}`` (or ``{key: {backend: summary}}``);
    ``None`` reads ``run_dir/latency.json`` or, failing that, measures each model briefly (30 short prompts,
    batch 1, under ~20 s in all); ``{}`` skips latency ("not run").
    """
    run_dir = Path(run_dir)
    doc, title, subtitle, summary = build_report(run_dir, config, latency)
    target = run_dir / REPORT_DIR
    with atomic_directory(target) as out:
        (out / "index.html").write_text(render_html(doc, title, subtitle), encoding="utf-8")
        (out / "report.md").write_text(render_markdown(doc, title, subtitle), encoding="utf-8")
        if doc.images:
            (out / "img").mkdir()
            for name, png in doc.images.items():
                (out / "img" / name).write_bytes(png)
        (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
    return target / "index.html"
