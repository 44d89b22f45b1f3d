"""Write evaluation results: ``metrics.json`` for machines, ``report.md`` and PNG plots for people.

``write_report`` renders any dict produced by ``metrics.py`` (recognised by its ``"kind"`` key), either alone
or nested under section names, e.g. ``{"category": classification_metrics(...), "jailbreak":
{"classification": ..., "detection": binary_detection_metrics(...)}, "model": "runs/x/models/category"}``.
Files are written to a temporary name in the same directory and renamed, so a reader never sees half a
report. Plots draw on a ``Figure`` with an Agg canvas: no pyplot state, no display needed.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.metrics import ConfusionMatrixDisplay, PrecisionRecallDisplay, RocCurveDisplay

from ..io import write_bytes
from .format import ci, markdown_cell, markdown_table


# ---------------------------------------------------------------------------------------------- writing
def figure_png(fig: Figure, dpi: int = 120) -> bytes:
    """A figure as PNG bytes (for a file, or a ``data:`` URI in a self-contained HTML report)."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


def _save_figure(fig: Figure, path: str | os.PathLike | None) -> bytes:
    """Write the figure to ``path`` (atomically) when one is given; always return its PNG bytes."""
    data = figure_png(fig)
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_bytes(path, data)
    return data


def _jsonable(x: Any) -> Any:
    """numpy scalars/arrays -> Python; NaN/inf -> None (strict JSON has no NaN)."""
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple, np.ndarray)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, os.PathLike):
        return os.fspath(x)
    return x


# ------------------------------------------------------------------------------------------------ plots
def plot_confusion_matrix(cm, labels: list[str], path: str | os.PathLike | None = None) -> bytes:
    """Confusion matrix PNG: colour = share of the true class (row), text = count (zeros left blank).
    Written to ``path`` if given; the PNG bytes are returned either way."""
    cm = np.asarray(cm)
    k = len(labels)
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros(cm.shape, dtype=float), where=rows > 0)
    side = max(5.0, 0.55 * k + 2.5)
    fig = Figure(figsize=(side + 1.2, side))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    disp = ConfusionMatrixDisplay(cm, display_labels=labels)
    disp.plot(
        ax=ax,
        cmap="Blues",
        colorbar=False,
        xticks_rotation=45,
        values_format="d",
        text_kw={"fontsize": 8 if k > 8 else 10},
    )
    disp.im_.set_data(norm)
    disp.im_.set_clim(0.0, 1.0)
    for (i, j), text in np.ndenumerate(disp.text_):
        text.set_color("white" if norm[i, j] > 0.5 else "black")
        if cm[i, j] == 0:
            text.set_text("")
    for tick in ax.get_xticklabels():
        tick.set_horizontalalignment("right")
    fig.colorbar(disp.im_, ax=ax, fraction=0.046, pad=0.04, label="share of true class")
    ax.set_title("Confusion matrix (counts; colour = row share)")
    return _save_figure(fig, path)


def plot_roc_pr(y_true, p_positive, path: str | os.PathLike | None = None) -> bytes:
    """One PNG: ROC curve (left) and precision-recall curve (right), each with its chance level and AUC.
    Written to ``path`` if given; the PNG bytes are returned either way."""
    fig = Figure(figsize=(11, 4.8))
    FigureCanvasAgg(fig)
    ax_roc, ax_pr = fig.subplots(1, 2)
    RocCurveDisplay.from_predictions(y_true, p_positive, ax=ax_roc, name="model", plot_chance_level=True)
    PrecisionRecallDisplay.from_predictions(y_true, p_positive, ax=ax_pr, name="model", plot_chance_level=True)
    ax_roc.set_title("ROC")
    ax_pr.set_title("Precision-recall")
    return _save_figure(fig, path)


# ---------------------------------------------------------------------------------------------- markdown
def _metric_rows(d: dict, keys: list[tuple[str, str]]) -> list[list[Any]]:
    return [[name, d[key]["value"], ci(d[key])] for key, name in keys if key in d]


def _sections(metrics: dict, prefix: str = "") -> Iterator[tuple[str, dict]]:
    if "kind" in metrics:
        yield prefix or "Results", metrics
        return
    for key, value in metrics.items():
        if isinstance(value, dict):
            yield from _sections(value, f"{prefix} / {key}" if prefix else str(key))


def _details(metrics: dict, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Plain scalar fields outside the metric dicts (model path, data fingerprint, ...)."""
    if "kind" in metrics:
        return
    for key, value in metrics.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict):
            yield from _details(value, name)
        elif isinstance(value, (str, int, float, bool, np.generic)) or value is None:
            yield name, value


def _headline(name: str, d: dict) -> list[list[Any]]:
    kind = d["kind"]
    if kind == "classification":
        counts = f"n={d['n']}, errors={d['n_errors']}"
        return [
            [name, "accuracy", d["accuracy"]["value"], ci(d["accuracy"]), counts],
            [name, "macro F1", d["macro_f1"]["value"], ci(d["macro_f1"]), counts],
        ]
    if kind == "binary_detection":
        counts = f"pos={d['n_pos']}, neg={d['n_neg']}"
        return [
            [name, "ROC-AUC", d["roc_auc"]["value"], ci(d["roc_auc"]), counts],
            [name, "PR-AUC", d["pr_auc"]["value"], ci(d["pr_auc"]), counts],
        ]
    if kind == "spans":
        counts = f"tp={d['tp']}, fp={d['fp']}, fn={d['fn']}"
        return [[name, "span micro F1 (exact)", d["micro_f1"]["value"], ci(d["micro_f1"]), counts]]
    if kind == "latency":
        return [[name, "p50 latency (ms)", d["p50_ms"], "-", f"n={d['n']}"]]
    return []


def _detection_rows(rows: list[dict]) -> list[list[Any]]:
    return [
        [r.get("target_fpr"), r["recall"], r["fpr"], r["threshold"], r["tp"], r["fn"], r["fp"], r["tn"], r.get("note")]
        for r in rows
    ]


def _render_section(name: str, d: dict) -> list[str]:
    lines = [f"## {name}", ""]
    kind = d["kind"]
    if kind == "classification":
        keys = [("accuracy", "accuracy")] + [
            (f"{avg}_{m}", f"{avg} {m}") for avg in ("macro", "weighted") for m in ("precision", "recall", "f1")
        ]
        rows = _metric_rows(d, keys) + [[m.upper(), d[m], "-"] for m in ("ece", "nll") if m in d]
        lines += markdown_table(["metric", "value", "95% CI"], rows)
        lines += [f"{d['n']} test rows, {d['n_errors']} errors. Macro averages over {d['macro_over']}.", ""]
        if d["labels_without_support"]:
            lines += [
                "Labels without test support (excluded from macro averages): "
                + ", ".join(map(markdown_cell, d["labels_without_support"])),
                "",
            ]
        lines += markdown_table(
            ["label", "precision", "recall", "F1", "support"],
            [[r["label"], r["precision"], r["recall"], r["f1"], r["support"]] for r in d["per_class"]],
        )
    elif kind == "binary_detection":
        lines += markdown_table(
            ["metric", "value", "95% CI"], _metric_rows(d, [("roc_auc", "ROC-AUC"), ("pr_auc", "PR-AUC")])
        )
        lines += [f"{d['n_pos']} positives, {d['n_neg']} negatives.", ""]
        header = ["target FPR", "recall", "FPR", "threshold", "TP", "FN", "FP", "TN", "note"]
        lines += [f"Recall at fixed false-positive rates; {d['at_fpr_basis']}:", ""]
        lines += markdown_table(header, _detection_rows(d["at_fpr"]))
        if "at_threshold" in d:
            lines += ["At the deployed threshold (chosen on validation data):", ""]
            lines += markdown_table(header, _detection_rows([d["at_threshold"]]))
    elif kind == "spans":
        lines += markdown_table(
            ["metric", "value", "95% CI"],
            _metric_rows(
                d, [("micro_precision", "micro precision"), ("micro_recall", "micro recall"), ("micro_f1", "micro F1")]
            ),
        )
        lines += [
            f"Matching: {d['matching']}. {d['n_docs']} documents, {d['n_gold']} gold spans, "
            f"{d['n_pred']} predicted; TP={d['tp']}, FP={d['fp']}, FN={d['fn']}.",
            "",
        ]
        lines += markdown_table(
            ["entity type", "precision", "recall", "F1", "support", "TP", "FP", "FN"],
            [
                [r["entity_type"], r["precision"], r["recall"], r["f1"], r["support"], r["tp"], r["fp"], r["fn"]]
                for r in d["per_type"]
            ],
        )
        if d["types_below_min_support"]:
            lines += [f"Types with fewer than {d['min_support']} gold spans (too few to score):", ""]
            lines += markdown_table(
                ["entity type", "gold spans", "predicted spans"],
                [[r["entity_type"], r["support"], r["predicted"]] for r in d["types_below_min_support"]],
            )
    elif kind == "latency":
        lines += markdown_table(
            ["n", "p50 (ms)", "p99 (ms)", "mean (ms)"], [[d["n"], d["p50_ms"], d["p99_ms"], d["mean_ms"]]]
        )
    else:
        lines += ["(no Markdown view for this kind; see metrics.json)", ""]
    return lines


def write_report(
    output_dir: str | os.PathLike, metrics: dict, *, title: str, extra_sections: dict[str, str] | None = None
) -> None:
    """Write ``metrics.json`` (sorted keys, strict JSON) and ``report.md`` into ``output_dir``.

    The report links every PNG already in ``output_dir`` (so plot first, then call this) and appends
    ``extra_sections`` (heading -> Markdown body) verbatim.
    """
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(_jsonable(metrics), sort_keys=True, indent=2, allow_nan=False) + "\n"
    write_bytes(out / "metrics.json", text.encode())

    sections = list(_sections(metrics))
    lines = [f"# {title}", ""]
    details = list(_details(metrics))
    if details:
        lines += [f"- **{markdown_cell(k)}**: {markdown_cell(v)}" for k, v in details] + [""]
    headline = [row for name, d in sections for row in _headline(name, d)]
    if headline:
        lines += ["## Summary", ""] + markdown_table(["section", "metric", "value", "95% CI", "counts"], headline)
    for name, d in sections:
        lines += _render_section(name, d)
    pngs = sorted(p.name for p in out.glob("*.png"))
    if pngs:
        lines += ["## Figures", ""] + [f"![{p}]({p})\n" for p in pngs]
    for heading, body in (extra_sections or {}).items():
        lines += [f"## {heading}", "", body.rstrip(), ""]
    lines += ["All numbers, including bootstrap settings: [metrics.json](metrics.json)", ""]
    write_bytes(out / "report.md", "\n".join(lines).encode())


PREDICTIONS_FILE = "predictions.jsonl"


def write_evaluation(
    output: str | os.PathLike,
    metrics: dict,
    *,
    title: str,
    sections: dict[str, str],
    predictions: list[dict],
    jailbreak_scores: tuple[list, list] | None = None,
) -> Path:
    """One head's evaluation as a directory: ``metrics.json``, ``report.md``, ``predictions.jsonl`` (row hashes,
    gold, predicted, served probabilities; no text) and its plots. Written atomically: no stale plots from an
    earlier report, nothing half-written; a directory that is not an earlier report is not replaced."""
    from ..io import atomic_directory, refuse_to_replace

    target = Path(output)
    refuse_to_replace(target, markers=("metrics.json",))
    with atomic_directory(target) as out:
        if "classification" in metrics:
            c = metrics["classification"]
            plot_confusion_matrix(np.array(c["confusion_matrix"]), c["confusion_matrix_labels"], out / "confusion.png")
        if jailbreak_scores is not None:
            plot_roc_pr(*jailbreak_scores, out / "roc_pr.png")
        (out / PREDICTIONS_FILE).write_text("".join(json.dumps(row) + "\n" for row in predictions), encoding="utf-8")
        write_report(out, metrics, title=title, extra_sections=sections)
    return target
