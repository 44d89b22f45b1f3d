"""``routerforge eval``: score a saved model on its own test split (re-read from the manifest) or on other data.

Predictions come from the runtime (:class:`routerforge.runtime.engine.TaskModel`), the code that serves, so the
numbers describe what is deployed. (DESIGN.md puts ``evaluation/`` before ``runtime/`` in the data flow; we
deliberately evaluate through the runtime rather than a second prediction path.)
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from ..data import load_split_from_manifest
from ..data.schema import Example, Span
from ..data.sources import load_examples
from ..data.intents import load_rules
from ..data.splits import resolve_labels, row_hash
from ..errors import RouterforgeError
from ..io import atomic_directory, refuse_to_replace
from ..tasks import get_task
from .metrics import binary_detection_metrics, classification_metrics, latency_summary, span_metrics
from .report import plot_confusion_matrix, plot_roc_pr, write_report

LATENCY_ROWS = 100


def evaluate_examples(model, examples: list[Example], *, n_boot: int = 1000, predictions: list[dict] | None = None) -> dict:
    """Metrics with 95% bootstrap intervals and counts for ``examples`` under ``model`` (a TaskModel)."""
    if not examples:
        return {"n": 0}
    predictions = predictions or model.predict([e.text for e in examples])
    truncated = int(sum(p["truncated"] for p in predictions))
    if model.kind == "token":
        gold = [list(e.spans) for e in examples]
        pred = [[Span(s["entity_type"], s["start"], s["end"]) for s in p["pii"]] for p in predictions]
        return {"spans": span_metrics(gold, pred, n_boot=n_boot), "truncated_rows": truncated}
    names = list(model.id2label[i] for i in range(len(model.id2label)))
    index = {name: i for i, name in enumerate(names)}
    y_true = [index[e.label] for e in examples]
    y_pred = [index[p["label"]] for p in predictions]
    probs = np.array([[p["probs"][name] for name in names] for p in predictions])
    metrics = {"classification": classification_metrics(y_true, y_pred, names, probs, n_boot=n_boot),
               "truncated_rows": truncated}
    if model.info["task"] == "jailbreak" and "jailbreak" in index:
        positive = index["jailbreak"]
        is_attack = [int(y == positive) for y in y_true]
        if 0 < sum(is_attack) < len(is_attack):
            metrics["detection"] = binary_detection_metrics(is_attack, probs[:, positive], n_boot=n_boot,
                                                            threshold=model.jailbreak_threshold)
        else:
            metrics["detection_skipped"] = "ROC/PR need both benign and jailbreak rows; this data has one class"
    return metrics


def headline(metrics: dict) -> dict[str, float]:
    """The few numbers a person looks at first."""
    out = {}
    if "classification" in metrics:
        c = metrics["classification"]
        out |= {"accuracy": c["accuracy"]["value"], "macro_f1": c["macro_f1"]["value"], "n": c["n"]}
    if "detection" in metrics:
        d = metrics["detection"]
        out |= {"roc_auc": d["roc_auc"]["value"]}
        out |= {f"recall@fpr{r['target_fpr']:g}": r["recall"] for r in d["at_fpr"]}
    if "spans" in metrics:
        s = metrics["spans"]
        out |= {"entity_f1": s["micro_f1"]["value"], "n_gold_spans": s["n_gold"]}
    return out


def _latency(model, examples: list[Example]) -> dict:
    texts = [e.text for e in examples[:LATENCY_ROWS]]
    for text in texts[:5]:  # warm-up
        model.predict([text])
    seconds = []
    for text in texts:
        start = time.perf_counter()
        model.predict([text])
        seconds.append(time.perf_counter() - start)
    return latency_summary(seconds) | {"batch_size": 1}


def _examples_from_files(model, data: list[str], text_field: str | None, label_field: str | None) -> list[Example]:
    """Rows from other files, read the way the model's training data was (fields, intent rules)."""
    options = model.info["data"]["manifest"]["load_options"]
    task = get_task(model.info["task"])
    rules = load_rules(options["rules"]) if options.get("rules") else None
    loaded = load_examples(task, data, text_field=text_field or options.get("text_field"),
                           label_field=label_field or options.get("label_field"), intent_rules=rules)
    resolve_labels(task, loaded.examples, list(model.info["labels"]), from_data=False)
    return loaded.examples


def _overlap_with_training(model, examples: list[Example]) -> int:
    """Rows of other data whose normalised text is in the model's training split: scores on them flatter it."""
    trained = {digest for _, digest in model.info["data"]["manifest"]["splits"]["train"]}
    return sum(row_hash(e) in trained for e in examples)


def _json_block(value) -> str:
    return "```json\n" + json.dumps(value, indent=2, default=str) + "\n```"


def _model_sections(info: dict) -> dict[str, str]:
    """How the model was made: data report (splits, duplicates, truncation) and training summary."""
    training = {k: v for k, v in info.get("training", {}).items() if k != "log_history"}
    return {"Data": _json_block(info["data"]["report"]),
            "Training": _json_block({"backbone": info["backbone"], "hyperparams": info["hyperparams"],
                                 "lora": info.get("lora"), "crf": info.get("crf", False)} | training)}


def evaluate(model_dir: str | Path, data: str | list[str] | list[Example] | None = None, *,
             output: str | Path | None = None,
             split: str = "test", text_field: str | None = None, label_field: str | None = None,
             n_boot: int = 1000, allow_pickle: bool = False) -> dict:
    """Evaluate a model directory; writes ``metrics.json``, ``report.md`` and plots into ``output``.

    Without ``data`` the model's own ``split`` is re-read from its sources, after checking their hashes.
    ``data`` may be files (``hf:`` specs too) or a list of :class:`Example` (e.g. ``task_data.test``).
    """
    from ..runtime.engine import TaskModel

    model = TaskModel.load(model_dir, allow_pickle=allow_pickle)
    if data and isinstance(data[0] if isinstance(data, list) else data, Example):
        examples, evaluated_on = list(data), {"data": "examples given in Python"}
    elif data:
        examples = _examples_from_files(model, [data] if isinstance(data, str) else list(data), text_field,
                                        label_field)
        evaluated_on = {"data": data, "rows_also_in_training_split": _overlap_with_training(model, examples)}
    else:
        examples = load_split_from_manifest(model.info["data"]["manifest"], split)
        evaluated_on = {"split": split, "fingerprint": model.info["data"]["manifest"]["fingerprint"]}
    if not examples:
        raise RouterforgeError(f"no rows to evaluate ({evaluated_on})")
    predictions = model.predict([e.text for e in examples])
    metrics = evaluate_examples(model, examples, n_boot=n_boot, predictions=predictions)
    metrics["latency"] = _latency(model, examples)
    metrics["evaluated_on"] = evaluated_on | {"rows": len(examples), "model": str(model_dir),
                                              "task": model.info["task"]}
    target = Path(output) if output else Path("reports") / Path(model_dir).name
    refuse_to_replace(target, markers=("metrics.json",))
    with atomic_directory(target) as out:  # no stale plots from an earlier report, nothing half-written
        if "classification" in metrics:
            c = metrics["classification"]
            plot_confusion_matrix(np.array(c["confusion_matrix"]), c["confusion_matrix_labels"],
                                  out / "confusion.png")
        if "detection" in metrics:
            plot_roc_pr([int(e.label == "jailbreak") for e in examples], [p["p_jailbreak"] for p in predictions],
                        out / "roc_pr.png")
        write_report(out, metrics, title=f"{model.info['task']} model: {Path(model_dir).name}",
                     extra_sections=_model_sections(model.info))
    return metrics
