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
"""
from __future__ import annotations

import base64
import html
import json
import platform
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..io import atomic_directory
from .calibration import expected_calibration_error, reliability_bins
from .evaluate import PREDICTIONS_FILE, request_latency
from .model_card import data_sources, headline_metrics, licence_of
from .report import figure_png, plot_confusion_matrix, plot_roc_pr

REPORT_DIR = "report"
LATENCY_FILE = "latency.json"
PIPELINE_FILE = "pipeline.json"
LATENCY_PROMPTS, LATENCY_BUDGET_S, LATENCY_WARMUP = 30, 20.0, 3
N_BINS = 15


# ----------------------------------------------------------------------------------------- document model
class NotRun(str):
    """A cell or paragraph for a piece of the run that is missing (stage not run, file absent)."""


def not_run(reason: str | None = None) -> NotRun:
    return NotRun("not run" + (f" ({reason})" if reason else ""))


@dataclass
class Doc:
    """Blocks rendered twice: to self-contained HTML and to Markdown (same headings, tables and text)."""

    blocks: list[tuple] = field(default_factory=list)
    images: dict[str, bytes] = field(default_factory=dict)

    def heading(self, level: int, text: str, anchor: str | None = None) -> None:
        self.blocks.append(("h", level, text, anchor))

    def para(self, text: str) -> None:
        self.blocks.append(("p", text))

    def table(self, header: list[str], rows: list[list[Any]], css: str = "") -> None:
        self.blocks.append(("table", header, rows, css))

    def image(self, name: str, png: bytes | None, caption: str, missing: str | None = None) -> None:
        """A figure; without ``png`` a "not run" line saying why (``missing``)."""
        if png is None:
            self.blocks.append(("p", not_run(missing)))
            return
        name = _slug(name) + ".png"
        self.images[name] = png
        self.blocks.append(("img", name, caption))

    def pre(self, text: str, lang: str = "") -> None:
        self.blocks.append(("pre", text, lang))

    def raw_html(self, markup: str, markdown: str) -> None:
        self.blocks.append(("raw", markup, markdown))

    def grid(self, start: bool) -> None:
        """Lay the blocks between ``grid(True)`` and ``grid(False)`` side by side in HTML."""
        self.blocks.append(("raw", '<div class="grid">' if start else "</div>", None))


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


def _fmt(x: Any) -> str:
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
        return ", ".join(f"{k}: {_fmt(v)}" for k, v in x.items()) or "-"
    if isinstance(x, (list, tuple)):
        return ", ".join(_fmt(v) for v in x) or "-"
    return str(x)


def _value_ci(m: dict | None) -> str:
    if not m or m.get("value") is None:
        return "-"
    ci = m.get("ci95")
    return f"{_fmt(m['value'])} [{_fmt(ci[0])}, {_fmt(ci[1])}]" if ci else _fmt(m["value"])


CSS = """
body{font:14px/1.45 -apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:#1d2330;margin:0;
background:#f6f7f9}
main{max-width:1220px;margin:0 auto;padding:18px 28px 60px}
header{background:#1f2a44;color:#fff;padding:16px 28px}
header h1{margin:0;font-size:22px}
header .meta{opacity:.85;margin-top:4px;font-size:13px}
h2{font-size:19px;border-bottom:2px solid #d8dce4;padding-bottom:3px;margin-top:30px}
h3{font-size:16px;margin:22px 0 8px}
h4{font-size:14px;margin:16px 0 6px;color:#37415a}
table{border-collapse:collapse;margin:6px 0 12px;background:#fff;font-size:13px}
th,td{border:1px solid #d8dce4;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#eef1f6;font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums}
tr:nth-child(even) td{background:#fafbfc}
.na{color:#8a6d00;font-style:italic}
nav{font-size:13px;margin:10px 0 0}
nav a{margin-right:12px;color:#2458b3;text-decoration:none}
img{max-width:100%;border:1px solid #e1e4ea;background:#fff;margin:4px 0}
figure{margin:6px 0 14px}
figcaption{font-size:12px;color:#5a6275}
pre{background:#fff;border:1px solid #d8dce4;padding:10px;overflow-x:auto;font-size:12px}
p{margin:6px 0 10px}
.grid{display:flex;flex-wrap:wrap;gap:0 24px;align-items:flex-start}
figure img{max-width:min(100%,1000px)}
.grid figure img{max-height:400px}
"""


def _is_number_cell(text: str) -> bool:
    return bool(re.fullmatch(r"-?[\d.,]+( ?(ms|MB|s))?( \[[-\d., ]+\])?", text))


def render_html(doc: Doc, title: str, subtitle: str) -> str:
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>",
           f"<header><h1>{html.escape(title)}</h1><div class=\"meta\">{html.escape(subtitle)}</div></header><main>"]
    for block in doc.blocks:
        kind = block[0]
        if kind == "h":
            _, level, text, anchor = block
            ident = f' id="{html.escape(anchor)}"' if anchor else ""
            out.append(f"<h{level}{ident}>{html.escape(text)}</h{level}>")
        elif kind == "p":
            text = block[1]
            css = ' class="na"' if isinstance(text, NotRun) else ""
            out.append(f"<p{css}>{_inline_html(text)}</p>")
        elif kind == "table":
            _, header, rows, css = block
            out.append(f'<table class="{css}"><thead><tr>' + "".join(f"<th>{html.escape(h)}</th>" for h in header)
                       + "</tr></thead><tbody>")
            for row in rows:
                cells = []
                for cell in row:
                    text = _fmt(cell)
                    cls = "na" if isinstance(cell, NotRun) else ("num" if _is_number_cell(text) else "")
                    cells.append(f'<td class="{cls}">{html.escape(text)}</td>' if cls else f"<td>{html.escape(text)}</td>")
                out.append("<tr>" + "".join(cells) + "</tr>")
            out.append("</tbody></table>")
        elif kind == "img":
            _, name, caption = block
            data = base64.b64encode(doc.images[name]).decode("ascii")
            out.append(f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(caption)}">'
                       f"<figcaption>{html.escape(caption)}</figcaption></figure>")
        elif kind == "pre":
            out.append(f"<pre>{html.escape(block[1])}</pre>")
        elif kind == "raw":
            out.append(block[1])
    out.append("</main></body></html>")
    return "\n".join(out) + "\n"


def _inline_html(text: str) -> str:
    """Escape, then the two Markdown inline forms the report uses: **bold** and `code`."""
    text = html.escape(text)
    text = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", text)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", text)


def render_markdown(doc: Doc, title: str, subtitle: str, image_dir: str = "img") -> str:
    out = [f"# {title}", "", subtitle, ""]
    for block in doc.blocks:
        kind = block[0]
        if kind == "h":
            out += ["#" * block[1] + " " + block[2], ""]
        elif kind == "p":
            out += [f"*{block[1]}*" if isinstance(block[1], NotRun) else block[1], ""]
        elif kind == "table":
            _, header, rows, _ = block
            out.append("| " + " | ".join(header) + " |")
            out.append("|" + "---|" * len(header))
            out += ["| " + " | ".join(_fmt(c).replace("|", "\\|").replace("\n", " ") for c in row) + " |"
                    for row in rows]
            out.append("")
        elif kind == "img":
            out += [f"![{block[2]}]({image_dir}/{block[1]})", ""]
        elif kind == "pre":
            out += [f"```{block[2]}", block[1].rstrip(), "```", ""]
        elif kind == "raw" and block[2] is not None:
            out += [block[2], ""]
    return "\n".join(out)


# ------------------------------------------------------------------------------------------ run contents
@dataclass
class ModelRun:
    """A model the run made (or should have made): a per-task model or the multitask bundle."""

    key: str                      # "bundle" or "models/<task>": its place in the run directory
    path: Path
    info: dict | None             # None: expected by the config, not there
    tasks: list[str]

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def is_bundle(self) -> bool:
        return bool(self.info) and "heads" in self.info


@dataclass
class Evaluation:
    metrics: dict                 # {"classification"?, "detection"?, "spans"?, "latency"?, "evaluated_on"?}
    source: str                   # where the numbers come from
    predictions: list[dict] | None = None
    directory: Path | None = None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def _heads(info: dict) -> dict:
    from ..runtime.engine import heads_of

    return heads_of(info)


def discover_models(run_dir: Path, config) -> list[ModelRun]:
    """Per-task models (``models/*``) and the bundle, plus those the config's training mode expects but the run
    directory lacks (shown as "not run")."""
    tasks = list(config.tasks) if config is not None else []
    mode = config.training.mode if config is not None else None
    found: dict[str, ModelRun] = {}
    models_dir = run_dir / "models"
    if models_dir.is_dir():
        for child in sorted(models_dir.iterdir()):
            info = _read_json(child / "routerforge.json") if child.is_dir() else None
            if isinstance(info, dict):
                found[f"models/{child.name}"] = ModelRun(f"models/{child.name}", child, info, list(_heads(info)))
    if mode in ("per-task", "both"):
        for task in tasks:
            if not any(task in m.tasks for m in found.values()):
                found[f"models/{task}"] = ModelRun(f"models/{task}", models_dir / task, None, [task])
    bundle_info = _read_json(run_dir / "bundle" / "routerforge.json")
    if isinstance(bundle_info, dict):
        found["bundle"] = ModelRun("bundle", run_dir / "bundle", bundle_info, list(_heads(bundle_info)))
    elif mode in ("multitask", "both"):
        found["bundle"] = ModelRun("bundle", run_dir / "bundle", None, tasks)
    order = {t: i for i, t in enumerate(tasks)}
    return sorted(found.values(), key=lambda m: (m.key == "bundle", min((order.get(t, 99) for t in m.tasks),
                                                                       default=99), m.key))


def _task_data(info: dict, task: str) -> dict:
    return (info.get("data") or {}).get(task) or {} if "heads" in info else info.get("data") or {}


def _recorded_metrics(info: dict, task: str) -> dict:
    metrics = info.get("metrics") or {}
    return (metrics.get(task) or {}) if "heads" in info else metrics


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
            on = (_read_json(metrics_file) or {}).get("evaluated_on") or {}
            try:
                same = Path(on.get("model", "")).resolve() == target and on.get("task") == task
            except OSError:
                same = False
            if same:
                directory = metrics_file.parent
                break
    if directory is not None:
        metrics = _read_json(directory / "metrics.json") or {}
        where = (metrics.get("evaluated_on") or {}).get("split") or "given data"
        return Evaluation(metrics, f"eval stage ({where} split): {directory.relative_to(run_dir)}",
                          _read_predictions(directory / PREDICTIONS_FILE), directory)
    recorded = _recorded_metrics(model.info or {}, task).get("test")
    if recorded and "error" not in recorded:
        return Evaluation(recorded, "test split, scored at training time (routerforge.json); eval stage not run")
    return None


def _data_report(run_dir: Path, models: list[ModelRun], task: str) -> tuple[dict, dict]:
    """``(report, manifest)`` for a task: ``data/<task>.json`` if the pipeline wrote it, else a model's record."""
    doc = _read_json(run_dir / "data" / f"{task}.json")
    if isinstance(doc, dict) and ("report" in doc or "manifest" in doc):
        return doc.get("report") or {}, doc.get("manifest") or {}
    if isinstance(doc, dict) and "rows_per_split" in doc:
        return doc, {}
    for model in models:
        if model.info and task in model.tasks:
            data = _task_data(model.info, task)
            return data.get("report") or {}, data.get("manifest") or {}
    return {}, {}


def _pipeline_stages(run_dir: Path) -> list[dict] | None:
    doc = _read_json(run_dir / PIPELINE_FILE)
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


# ------------------------------------------------------------------------------------------------ latency
def _latency_prompts(n: int = LATENCY_PROMPTS) -> list[str]:
    from ..data.synth import generate

    per_task = [[e.text for e in generate(task, n, seed=7)] for task in ("category", "jailbreak", "intent", "pii")]
    return [text for group in zip(*per_task) for text in group][:n]


def measure_latency(models: list[ModelRun], *, budget_s: float = LATENCY_BUDGET_S,
                    n: int = LATENCY_PROMPTS) -> dict[str, dict]:
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
                "backend": router.backend_name, "prompts": "short synthetic", "measured_by": "report"}
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


def probabilities_before_scaling(p_after: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities at T=1 from served ones: ``p_after = softmax(z / T)``, so ``softmax(T * log p_after)``
    recovers ``softmax(z)`` (exact up to float clipping of tiny probabilities)."""
    from ..runtime.engine import softmax

    return softmax(np.log(np.clip(np.asarray(p_after, dtype=np.float64), 1e-300, None)) * temperature)


def plot_reliability(p_before: np.ndarray, p_after: np.ndarray, y: np.ndarray, temperature: float,
                     n_bins: int = N_BINS) -> bytes:
    """Two reliability diagrams (top-label accuracy vs confidence per bin, bar width = bin): T=1 and T."""
    fig, axes = _figure(10.5, 4.4, 2)
    for ax, probs, title in ((axes[0], p_before, "before (T = 1)"), (axes[1], p_after, f"after (T = {temperature:.3f})")):
        bins = reliability_bins(probs, y, n_bins)
        ece = expected_calibration_error(probs, y, n_bins)
        width = 1.0 / n_bins
        lo = np.array([b["lo"] for b in bins])
        acc = np.array([b["accuracy"] if b["count"] else 0.0 for b in bins])
        conf = np.array([b["confidence"] if b["count"] else np.nan for b in bins])
        counts = np.array([b["count"] for b in bins])
        ax.bar(lo, acc, width=width, align="edge", color="#4c72b0", edgecolor="white", label="accuracy")
        ax.bar(lo, np.where(counts > 0, conf - acc, 0), bottom=acc, width=width, align="edge", fill=False,
               edgecolor="#c44e52", hatch="//", linewidth=0.8, label="gap to mean confidence")
        ax.plot([0, 1], [0, 1], "k--", linewidth=1, label="perfect calibration")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("confidence (top label)")
        ax.set_ylabel("accuracy")
        ax.set_title(f"{title}: ECE {ece:.3f}")
        share = ax.twinx()
        used = counts > 0
        share.plot((lo + width / 2)[used], (counts / max(counts.sum(), 1))[used], color="#55a868", marker="o",
                   markersize=3, linewidth=1)
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
def _headline_metric(task: str, metrics: dict) -> tuple[str, dict | None]:
    if "spans" in metrics:
        return "span F1 (exact)", metrics["spans"].get("micro_f1")
    if task == "jailbreak" and "detection" in metrics:
        return "ROC-AUC", metrics["detection"].get("roc_auc")
    if "classification" in metrics:
        return "macro F1", metrics["classification"].get("macro_f1")
    return "-", None


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
    items = stage.get("items") if isinstance(stage.get("items"), dict) else {}
    parts = []
    if stage.get("ran") is not None:
        parts.append(f"{len(stage['ran'])} ran")
    if stage.get("skipped"):
        parts.append(f"{len(stage['skipped'])} unchanged")
    failed = [f"{name}: {e.get('error', 'failed')}" for name, e in items.items()
              if isinstance(e, dict) and e.get("status") == "failed"]
    return ", ".join(parts + failed[:1]) or (f"{len(items)}" if items else "-")


def _latency_cell(rows: list[dict]) -> Any:
    ok = [r for r in rows if r.get("p50_ms") is not None]
    if not ok:
        reason = next((r.get("skipped") or r.get("error") for r in rows), None)
        return not_run(reason)
    best = next((r for r in ok if r.get("backend") == "onnx-int8"), ok[0])
    text = f"{best['p50_ms']:.1f} ms"
    return text if best.get("backend") == "onnx-int8" else f"{text} ({best.get('backend')}; no int8 export)"


def _summary(doc: Doc, models: list[ModelRun], evaluations: dict, latency: dict, stages, tasks: list[str]) -> list[dict]:
    doc.heading(2, "Summary", "summary")
    rows, records = [], []
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
            name, m = _headline_metric(task, metrics)
            calibration = ((model.info.get("calibration") or {}).get(task) or {})
            ece = (calibration.get("test") or calibration.get("val") or {}).get("ece_after")
            threshold = (model.info.get("thresholds") or {}).get("jailbreak") if task == "jailbreak" else None
            at = _threshold_on_test(model, evaluation) if task == "jailbreak" else None
            rows.append([model.key, task, f"{name}: {_value_ci(m)}" if m else not_run("no evaluation"),
                         _test_rows(metrics) if metrics else "-",
                         ece if ece is not None else (not_run() if task not in calibration else "-"),
                         ("-" if task != "jailbreak" else threshold if threshold is not None else not_run()),
                         (f"{_fmt(at.get('recall'))} / {_fmt(at.get('fpr'))}" if at else
                          ("-" if task != "jailbreak" else not_run())),
                         _latency_cell(_latency_rows(latency, model.key)),
                         "eval stage" if evaluation and evaluation.directory else
                         ("training record" if evaluation else not_run())])
            records.append({"model": model.key, "task": task, "metric": name, "value": (m or {}).get("value"),
                            "ci95": (m or {}).get("ci95"), "test_rows": _test_rows(metrics) if metrics else None,
                            "ece_after": ece, "threshold": threshold,
                            "tpr_at_threshold": (at or {}).get("recall"), "fpr_at_threshold": (at or {}).get("fpr")})
    if rows:
        doc.table(["model", "head", "headline metric, test [95% CI]", "test rows", "ECE after T (test)",
                   "jailbreak threshold", "TPR / FPR at threshold (test)", "p50 latency (int8)", "numbers from"],
                  rows, "headline")
    else:
        doc.para(not_run("no models in this run"))
    stage_rows = [[s.get("stage") or s.get("name"), s.get("status"),
                   f"{s['seconds']:.1f} s" if isinstance(s.get("seconds"), (int, float)) else s.get("seconds"),
                   _items_cell(s), (s.get("input_hash") or s.get("hash") or "-")[:12]] for s in stages or []]
    doc.heading(3, "Pipeline stages", "stages")
    if stage_rows:
        doc.table(["stage", "status", "time", "items", "input hash"], stage_rows)
    else:
        doc.para(not_run(f"no {PIPELINE_FILE}"))
    doc.heading(3, "Serving latency (batch 1, end to end classify)", "latency")
    lat_rows = []
    for model in models:
        for r in _latency_rows(latency, model.key):
            if r.get("p50_ms") is None:
                lat_rows.append([model.key, r.get("backend", "-"), not_run(r.get("skipped") or r.get("error")),
                                 "-", "-", "-"])
            else:
                lat_rows.append([model.key, r.get("backend"), f"{r['p50_ms']:.1f} ms", f"{r['p99_ms']:.1f} ms",
                                 r.get("n"), r.get("prompts", "-")])
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
    rows = []
    for task in tasks:
        report, manifest = _data_report(run_dir, models, task)
        if not report and not manifest:
            rows.append([task, not_run("no data report"), "-", "-", "-", "-", "-"])
            continue
        per_split = report.get("rows_per_split") or {}
        moved = report.get("near_duplicates_moved_to_train") or {}
        sources = data_sources(manifest) if manifest else []
        names = list(dict.fromkeys((e["source"].name if e["source"] else Path(e["path"]).name) + f" ({licence_of(e)})"
                                   for e in sources))
        rows.append([task, per_split.get("train"), per_split.get("val"), per_split.get("test"),
                     f"{report.get('duplicates_removed', 0)} + {(moved.get('val') or 0) + (moved.get('test') or 0)} "
                     "moved" if moved else report.get("duplicates_removed"),
                     (report.get("rows_longer_than_training_window") or {}).get("train"),
                     "; ".join(names) or "-"])
    doc.table(["task", "train", "val", "test", "duplicates removed + near-duplicates moved to train",
               "train rows truncated", "data (licence)"], rows)


def _data_section(doc: Doc, task: str, report: dict, manifest: dict) -> None:
    doc.heading(3, f"{task}: data", f"data-{_slug(task)}")
    if not report and not manifest:
        doc.para(not_run("no data report"))
        return
    per_split = report.get("rows_per_split") or {}
    labels = report.get("labels_per_split") or {}
    splits = [s for s in ("train", "val", "test") if s in per_split or s in labels]
    moved = report.get("near_duplicates_moved_to_train") or {}
    long_rows = report.get("rows_longer_than_training_window") or {}
    cleaning = [["rows read", report.get("rows_read")],
                ["rows per split", ", ".join(f"{s}: {per_split[s]}" for s in splits if s in per_split) or "-"],
                ["rows dropped by the loader", report.get("rows_dropped_by_loader") or 0],
                ["exact duplicates removed", report.get("duplicates_removed")],
                ["rows with conflicting labels dropped", report.get("conflicting_label_rows_dropped")],
                ["near-duplicates moved to train", f"val: {moved.get('val', 0)}, test: {moved.get('test', 0)} "
                                                   f"(TF-IDF cosine >= {moved.get('threshold', '-')})" if moved else "-"],
                ["rows longer than the training window (truncated for training)",
                 f"train: {long_rows.get('train', 0)}, val: {long_rows.get('val', 0)} "
                 f"(window {long_rows.get('window', '-')} tokens)" if long_rows else "-"]]
    if report.get("synthetic_train_rows"):
        cleaning.append(["synthetic training rows", report["synthetic_train_rows"]])
    if report.get("rows_in_unused_splits"):
        cleaning.append(["rows in unused splits", report["rows_in_unused_splits"]])
    cleaning += [["labels without test rows", report.get("labels_without_test_support") or "none"],
                 ["fingerprint", report.get("fingerprint") or manifest.get("fingerprint")]]
    shown = {"rows_read", "rows_per_split", "labels_per_split", "rows_dropped_by_loader", "duplicates_removed",
             "conflicting_label_rows_dropped", "near_duplicates_moved_to_train", "rows_longer_than_training_window",
             "synthetic_train_rows", "rows_in_unused_splits", "labels_without_test_support", "fingerprint"}
    cleaning += [[key.replace("_", " "), value] for key, value in report.items() if key not in shown]
    doc.grid(True)
    doc.table(["", "value"], cleaning)
    if labels:
        names = sorted({name for s in splits for name in (labels.get(s) or {})})
        unit = "spans" if task == "pii" else "rows"
        doc.table(["label"] + [f"{s} ({unit})" for s in splits],
                  [[name] + [(labels.get(s) or {}).get(name, 0) for s in splits] for name in names])
    doc.grid(False)
    sources = data_sources(manifest) if manifest else []
    if sources:
        doc.table(["source", "rows", "sha256", "licence"],
                  [[e["path"], e["rows"], (e["sha256"] or "")[:12] or "-", licence_of(e)] for e in sources])


def _metric_table(evaluation: Evaluation, val: dict) -> list[list[Any]]:
    rows = []
    test = evaluation.metrics
    val_metrics = dict(headline_metrics(val)) if val else {}
    extra = []
    if "classification" in test:
        c = test["classification"]
        extra = [("macro precision", c.get("macro_precision")), ("macro recall", c.get("macro_recall")),
                 ("weighted F1", c.get("weighted_f1"))]
        val_c = val.get("classification") or {}
        val_metrics |= {"macro precision": val_c.get("macro_precision"), "macro recall": val_c.get("macro_recall"),
                        "weighted F1": val_c.get("weighted_f1")}
    for name, m in headline_metrics(test) + [(n, m) for n, m in extra if m]:
        ci = m.get("ci95")
        rows.append([name, m.get("value"), f"[{_fmt(ci[0])}, {_fmt(ci[1])}]" if ci else "-",
                     _value_ci(val_metrics.get(name)) if val_metrics.get(name) else "-"])
    if "classification" in test:
        for key in ("ece", "nll"):
            if test["classification"].get(key) is not None:
                rows.append([key.upper() + " (served probabilities)", test["classification"][key], "-", "-"])
    return rows


def _per_class(doc: Doc, metrics: dict) -> None:
    if "classification" in metrics:
        c = metrics["classification"]
        doc.table(["label", "precision", "recall", "F1", "support"],
                  [[r["label"], r["precision"], r["recall"], r["f1"], r["support"]] for r in c.get("per_class", [])])
    if "spans" in metrics:
        s = metrics["spans"]
        doc.table(["entity type", "precision", "recall", "F1", "support", "TP", "FP", "FN"],
                  [[r["entity_type"], r["precision"], r["recall"], r["f1"], r["support"], r["tp"], r["fp"], r["fn"]]
                   for r in s.get("per_type", [])])
        below = s.get("types_below_min_support") or []
        if below:
            doc.para(f"Too few gold spans to score (fewer than {s.get('min_support')}): "
                     + ", ".join(f"{r['entity_type']} ({r['support']} gold, {r['predicted']} predicted)" for r in below))


def _probability_matrix(predictions: list[dict], names: list[str]) -> tuple[np.ndarray, np.ndarray] | None:
    rows = [p for p in predictions if isinstance(p.get("probs"), dict) and p.get("gold") in names]
    if not rows:
        return None
    probs = np.array([[p["probs"].get(n, 0.0) for n in names] for p in rows], dtype=np.float64)
    probs /= np.clip(probs.sum(axis=1, keepdims=True), 1e-12, None)
    return probs, np.array([names.index(p["gold"]) for p in rows])


def _head_section(doc: Doc, run_dir: Path, model: ModelRun, task: str, evaluation: Evaluation | None) -> None:
    anchor = f"{_slug(task)}-{_slug(model.key)}"
    doc.heading(3, f"{task}: {model.key}", anchor)
    if model.info is None:
        doc.para(not_run(f"no model at {model.key}"))
        return
    head = _heads(model.info)[task]
    calibration = (model.info.get("calibration") or {}).get(task) or {}
    if evaluation is None:
        doc.para(not_run("no evaluation: neither an eval stage output nor metrics in routerforge.json"))
    else:
        doc.para(f"Numbers from: {evaluation.source}.")
        val = _recorded_metrics(model.info, task).get("val") or {}
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
        png = plot_confusion_matrix(np.array(c["confusion_matrix"]), c["confusion_matrix_labels"]) \
            if c.get("confusion_matrix") else None
        figures.append((f"{model.key}-{task}-confusion", png, f"{task} ({model.key}): confusion matrix on test",
                        "no confusion matrix: eval stage not run"))
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
        figures.append((f"{model.key}-{task}-roc", png, (f"{task} ({model.key}): ROC and precision-recall on test "
                                                        "(AUC / AP in the legends)"), why))
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
        doc.table(["split", "rows" if calibration.get("unit") != "token" else "tokens", "ECE before", "ECE after",
                   "NLL before", "NLL after"],
                  [[split, d.get("n"), d.get("ece_before"), d.get("ece_after"), d.get("nll_before"), d.get("nll_after")]
                   for split in ("val", "test") for d in [calibration.get(split)] if d])
        doc.para(f"Temperature T = {_fmt(calibration.get('temperature'))}, fitted on {calibration.get('fitted_on', 'val')} "
                 f"(unit: {calibration.get('unit', 'text')}).")
    if head["kind"] == "token":
        doc.para("Reliability diagram: not drawn for span heads (calibration is per token; see the table).")
    elif matrix is not None and calibration:
        probs, y = matrix
        # the temperature the predictions were served with (recorded by evaluate), else the model's current one
        applied = (metrics.get("evaluated_on") or {}).get("temperature")
        temperature = float(applied if applied is not None else calibration.get("temperature", 1.0))
        doc.image(f"{model.key}-{task}-reliability", plot_reliability(probabilities_before_scaling(probs, temperature),
                                                                      probs, y, temperature),
                  f"{task} ({model.key}): reliability on the evaluated rows (n={len(y)}), before and after "
                  "temperature scaling")
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
            doc.para(f"Flag when P(jailbreak) >= **{threshold:.4f}**, chosen on validation for a target FPR of "
                     f"{_fmt(chosen.get('target_fpr'))}" + ("" if chosen.get("resolvable", True) else
                                                            " (too few benign validation rows to resolve it: the "
                                                            "threshold admits no validation false positive)") + ".")
            doc.table(["split", "TPR (recall)", "FPR", "TP", "FP", "FN", "TN"],
                      [[split, d.get("recall"), d.get("fpr"), d.get("tp"), d.get("fp"), d.get("fn"), d.get("tn")]
                       for split, d in (("validation", chosen), ("test", at)) if d])


def _training_section(doc: Doc, model: ModelRun) -> None:
    doc.heading(3, f"Training: {model.key}", f"training-{_slug(model.key)}")
    if model.info is None:
        doc.para(not_run(f"no model at {model.key}"))
        return
    info = model.info
    training = info.get("training") or {}
    backbone = info.get("backbone") or {}
    summary = [["backbone", f"{backbone.get('name')} ({backbone.get('model_type')})"],
               ["LoRA", info.get("lora") or "no (full fine-tuning)"], ["max length (tokens)", info.get("max_length")]]
    summary += [[k.replace("_", " "), v] for k, v in training.items() if k != "log_history"]
    if info.get("multitask"):
        summary.append(["task sampling", (info["multitask"] or {}).get("sampling")])
    doc.grid(True)
    doc.table(["", "value"], summary)
    doc.table(["hyperparameter", "value"], [[k, v] for k, v in (info.get("hyperparams") or {}).items()])
    doc.grid(False)
    doc.image(f"{model.key}-training", plot_training_curves(training.get("log_history") or []),
              f"{model.key}: training and validation curves", "no Trainer log history recorded")


def _exports_section(doc: Doc, models: list[ModelRun]) -> None:
    doc.heading(2, "Exports", "exports")
    rows = []
    for model in models:
        if model.info is None:
            continue
        exports = model.info.get("exports") or {}
        if not exports:
            rows.append([model.key, not_run(), "-", "-", "-", "-"])
        for fmt, e in exports.items():
            parity = e.get("parity") or {}
            rows.append([model.key, fmt, e.get("file"), e.get("size_mb"),
                         ("passed" if parity.get("passed") else "FAILED" if parity else "-")
                         + (f": {parity['criteria']}" if parity.get("criteria") else ""), e.get("recipe", "-")])
    if rows:
        doc.table(["model", "format", "file", "size (MB)", "parity", "recipe"], rows)
    else:
        doc.para(not_run("no models"))


def _versions_section(doc: Doc, models: list[ModelRun]) -> None:
    doc.heading(2, "Library versions", "versions")
    recorded = [(m.key, m.info.get("versions") or {}) for m in models if m.info]
    packages = list(dict.fromkeys(p for _, v in recorded for p in v))
    if packages:
        doc.table(["package"] + [key for key, _ in recorded],
                  [[p] + [v.get(p, "-") for _, v in recorded] for p in packages])
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
        precomputed = _read_json(run_dir / LATENCY_FILE)
        latency = precomputed if isinstance(precomputed, dict) else measure_latency(models)
    evaluations = {(m.key, t): find_evaluation(run_dir, m, t) for m in models if m.info for t in m.tasks}

    name = config.name if config is not None else run_dir.name
    infos = [m.info for m in models if m.info]
    trained = max((i.get("created", "") for i in infos), default="") or "not run"
    backbone = (infos[0].get("backbone") or {}) if infos else {}
    mode = config.training.mode if config is not None else ("multitask" if any(m.is_bundle for m in models) else "-")
    subtitle = (f"report {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} · trained {trained[:16].replace('T', ' ')}"
                f" · backbone {config.backbone if config is not None else backbone.get('name', '?')}"
                + (f" ({backbone.get('model_type')})" if backbone.get("model_type") else "")
                + f" · mode {mode} · heads {', '.join(tasks) or '-'}"
                + (f" · seed {config.seed}" if config is not None else ""))
    doc = Doc()
    links = [("summary", "Summary"), ("data-glance", "Data")] + [(f"task-{_slug(t)}", t) for t in tasks] + [
        ("training", "Training"), ("exports", "Exports"), ("config", "Config"), ("versions", "Versions")]
    doc.raw_html('<nav>' + "".join(f'<a href="#{a}">{html.escape(text)}</a>' for a, text in links) + "</nav>",
                 " · ".join(f"[{text}](#{a})" for a, text in links))
    records = _summary(doc, models, evaluations, latency, _pipeline_stages(run_dir), tasks)
    _data_glance(doc, run_dir, models, tasks)

    for task in tasks:
        doc.heading(2, f"Task: {task}", f"task-{_slug(task)}")
        _data_section(doc, task, *_data_report(run_dir, models, task))
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
    state = _read_json(run_dir / PIPELINE_FILE)
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
