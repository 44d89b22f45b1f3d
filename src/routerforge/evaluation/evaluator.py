"""``routerforge eval``: score a saved model on its own test split (re-read from the manifest) or on other data.

Predictions come from the runtime (:class:`routerforge.runtime.engine.Router`), the code that serves, so the
numbers describe what is deployed: evaluation sits above the runtime and never has a second prediction path
(docs/architecture.md).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, cast

import numpy as np

from ..bundle import head_data, heads_of, read_info
from ..data import load_split_from_manifest
from ..data.intents import load_rules
from ..data.located import located
from ..data.schema import Example, Span
from ..data.sources import load_examples
from ..data.splits import resolve_labels, row_hash
from ..errors import RouterforgeError
from ..runtime.signals import Signals
from ..tasks import get_task
from .metrics import binary_detection_metrics, classification_metrics, latency_summary, span_metrics

LATENCY_ROWS = 100


def head_splits(info: dict, heads, splits: tuple[str, ...]) -> dict[str, dict[str, list[Example]]]:
    """``{head: {split: examples}}``, each re-read (and hash-checked) from that head's manifest."""
    return {
        head: {split: load_split_from_manifest(head_data(info, head)["manifest"], split) for split in splits}
        for head in heads
    }


def task_predictions(signals: list[Signals], task: str, head: dict) -> list[dict]:
    """One task's answer from each :class:`Signals`: ``{label, probs}`` or ``{pii}`` (the classify JSON shape)."""
    names, out = head["label_names"], []
    for s in signals:
        if head["kind"] == "token":
            out.append({"pii": [asdict(p) for p in s.pii or []], "truncated": s.truncated})
        elif task == "jailbreak" and s.jailbreak is not None:
            p = s.jailbreak.p_jailbreak
            probs = {n: (p if n == "jailbreak" else 1.0 - p) for n in names}
            out.append({"label": s.jailbreak.label, "probs": probs, "p_jailbreak": p, "truncated": s.truncated})
        else:
            signal = s.category if task == "category" else s.intent if task == "intent" else s.extra[task]
            if signal is None:
                raise RouterforgeError(f"the model gave no {task} answer", hint=f"is {task!r} one of its heads?")
            out.append({"label": signal.label, "probs": signal.probs, "truncated": s.truncated})
    return out


def head_answers(router, task: str, examples: list[Example], signals: list[Signals] | None = None) -> dict:
    """What one head of ``router`` answered on ``examples``, beside the gold: ``{gold, pred}`` span lists per row
    for a token head; ``{gold, pred, probs, names}`` (label indices, probabilities) for a sequence head."""
    head = router.heads[task]
    signals = signals or router.classify_batch([e.text for e in examples])
    predictions = task_predictions(signals, task, head)
    truncated = int(sum(p["truncated"] for p in predictions))
    if head["kind"] == "token":
        gold = [list(e.spans or ()) for e in examples]
        pred = [[Span(s["entity_type"], s["start"], s["end"]) for s in p["pii"]] for p in predictions]
        return {"gold": gold, "pred": pred, "truncated": truncated}
    names = list(head["label_names"])
    index = {name: i for i, name in enumerate(names)}
    return {
        "gold": [index[e.label] for e in examples],
        "pred": [index[p["label"]] for p in predictions],
        "probs": np.array([[p["probs"][name] for name in names] for p in predictions]),
        "names": names,
        "truncated": truncated,
    }


def evaluate_examples(
    router, task: str, examples: list[Example], *, n_boot: int = 1000, signals: list[Signals] | None = None
) -> dict:
    """Metrics with 95% bootstrap intervals and counts for one head of ``router`` on ``examples``."""
    if not examples:
        return {"n": 0}
    answers = head_answers(router, task, examples, signals)
    if "names" not in answers:
        return {
            "spans": span_metrics(answers["gold"], answers["pred"], n_boot=n_boot),
            "truncated_rows": answers["truncated"],
        }
    names, y_true, probs = answers["names"], answers["gold"], answers["probs"]
    index = {name: i for i, name in enumerate(names)}
    metrics = {
        "classification": classification_metrics(y_true, answers["pred"], names, probs, n_boot=n_boot),
        "truncated_rows": answers["truncated"],
    }
    if task == "jailbreak" and "jailbreak" in index:
        positive = index["jailbreak"]
        is_attack = [int(y == positive) for y in y_true]
        if 0 < sum(is_attack) < len(is_attack):
            metrics["detection"] = binary_detection_metrics(
                is_attack, probs[:, positive], n_boot=n_boot, threshold=router.threshold
            )
        else:
            metrics["detection_skipped"] = "ROC/PR need both benign and jailbreak rows; this data has one class"
    return metrics


def headline(metrics: dict) -> dict[str, float]:
    """The few numbers a person looks at first."""
    out: dict[str, float] = {}
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


def request_latency(router, texts: list[str], warmup: int = 5) -> dict:
    """p50/p99 of one ``classify`` call per text (batch 1), after ``warmup`` untimed calls."""
    for text in texts[:warmup]:
        router.classify(text)
    seconds = []
    for text in texts:
        start = time.perf_counter()
        router.classify(text)
        seconds.append(time.perf_counter() - start)
    return latency_summary(seconds) | {"batch_size": 1}


def _examples_from_files(
    manifest: dict, labels: list[str], data: list[str], text_field: str | None, label_field: str | None
) -> list[Example]:
    """Rows from other files, read the way the model's training data was (fields, intent rules)."""
    options = manifest["load_options"]
    task = get_task(manifest["task"])
    rules = load_rules(located(options["rules"], options.get("rules_sha256"))) if options.get("rules") else None
    loaded = load_examples(
        task,
        data,
        text_field=text_field or options.get("text_field"),
        label_field=label_field or options.get("label_field"),
        intent_rules=rules,
    )
    resolve_labels(task, loaded.examples, list(labels), from_data=False)
    return loaded.examples


def _overlap_with_training(manifest: dict, examples: list[Example]) -> int:
    """Rows of other data whose normalised text is in the model's training split: scores on them flatter it."""
    trained = {digest for _, digest in manifest["splits"]["train"]}
    return sum(row_hash(e) in trained for e in examples)


def prediction_rows(router, task: str, examples: list[Example], signals: list[Signals]) -> list[dict]:
    """One row per example for ``predictions.jsonl``: the row hash (no text), gold and predicted answer, and the
    served (temperature-scaled) probabilities, so reports can draw reliability and ROC curves without rerunning
    the model. Token heads: gold and predicted spans ``[entity_type, start, end]`` (+ score)."""
    rows = []
    for example, p in zip(examples, task_predictions(signals, task, router.heads[task])):
        row: dict[str, Any] = {"hash": row_hash(example)}
        if "pii" in p:
            row |= {
                "gold": [[s.entity_type, s.start, s.end] for s in example.spans or []],
                "pred": [[s["entity_type"], s["start"], s["end"], round(s["score"], 6)] for s in p["pii"]],
            }
        else:
            row |= {"gold": example.label, "pred": p["label"], "probs": p["probs"]}
        rows.append(row)
    return rows


def _json_block(value) -> str:
    return "```json\n" + json.dumps(value, indent=2, default=str) + "\n```"


def _model_sections(info: dict, task: str) -> dict[str, str]:
    """How the model was made: data report (splits, duplicates, truncation) and training summary."""
    training = {k: v for k, v in info.get("training", {}).items() if k != "log_history"}
    return {
        "Data": _json_block(head_data(info, task)["report"]),
        "Training": _json_block(
            {
                "backbone": info["backbone"],
                "hyperparams": info["hyperparams"],
                "lora": info.get("lora"),
                "crf": info.get("crf", False),
            }
            | training
        ),
    }


def _p_jailbreak(signals: list[Signals]) -> list[float]:
    """Each text's jailbreak probability (a model with a jailbreak head gives one for every text)."""
    out = []
    for s in signals:
        if s.jailbreak is None:
            raise RouterforgeError("the model gave no jailbreak answer", hint="is 'jailbreak' one of its heads?")
        out.append(s.jailbreak.p_jailbreak)
    return out


def evaluate(
    model_dir: str | Path,
    data: str | list[str] | list[Example] | None = None,
    *,
    output: str | Path | None = None,
    task: str | None = None,
    split: str = "test",
    text_field: str | None = None,
    label_field: str | None = None,
    n_boot: int = 1000,
    backend: str | None = None,
    allow_pickle: bool = False,
) -> dict:
    """Evaluate one head of a model directory and return its metrics; with ``output``, also write
    ``metrics.json``, ``report.md``, ``predictions.jsonl`` and plots there (nothing is written without it).

    ``task``: which head of a multitask bundle (a per-task model has one). Without ``data`` the head's own
    ``split`` is re-read from its sources, after checking their hashes. ``data`` may be files (``hf:`` specs
    too) or a list of :class:`Example` (e.g. ``task_data.test``). ``backend``: as :meth:`Router.load`.
    """
    from ..runtime.engine import Router

    info = read_info(model_dir)
    heads = list(heads_of(info))  # checked before the model (and torch) loads
    task = task or (heads[0] if len(heads) == 1 else None)
    if task not in heads:
        raise RouterforgeError(
            f"say which head to evaluate: {task!r} is not one of {', '.join(heads)}", hint="pass --task"
        )
    if heads_of(info)[task]["kind"] == "multilabel":
        raise RouterforgeError(
            f"the {task} head predicts per-model outcomes; it is measured as routing accuracy and cost",
            hint=f"run: routerforge bench routing {model_dir} --outcomes FILE",
        )
    router = Router.load(model_dir, backend or "torch", allow_pickle=allow_pickle, info=info)
    manifest = head_data(router.info, task)["manifest"]
    examples: list[Example]
    evaluated_on: dict[str, Any]
    if data and isinstance(data[0] if isinstance(data, list) else data, Example):
        examples, evaluated_on = cast("list[Example]", list(data)), {"data": "examples given in Python"}
    elif data:
        examples = _examples_from_files(
            manifest,
            router.heads[task]["labels"],
            [data] if isinstance(data, str) else cast("list[str]", list(data)),  # not Examples: the branch above
            text_field,
            label_field,
        )
        evaluated_on = {"data": data, "rows_also_in_training_split": _overlap_with_training(manifest, examples)}
    else:
        examples = load_split_from_manifest(manifest, split)
        evaluated_on = {"split": split, "fingerprint": manifest["fingerprint"]}
    if not examples:
        raise RouterforgeError(f"no rows to evaluate ({evaluated_on})")
    signals = router.classify_batch([e.text for e in examples])
    metrics = evaluate_examples(router, task, examples, n_boot=n_boot, signals=signals)
    texts = [e.text for e in examples[:LATENCY_ROWS]]
    metrics["latency"] = request_latency(router, texts) | {"backend": router.backend_name}
    metrics["evaluated_on"] = evaluated_on | {
        "rows": len(examples),
        "model": str(model_dir),
        "task": task,
        "temperature": router.temperature[task],
    }
    if output is not None:
        from ..reports.eval_report import write_evaluation

        write_evaluation(
            output,
            metrics,
            title=f"{task} model: {Path(model_dir).name}",
            sections=_model_sections(router.info, task),
            predictions=prediction_rows(router, task, examples, signals),
            jailbreak_scores=(
                [int(e.label == "jailbreak") for e in examples],
                _p_jailbreak(signals),
            )
            if "detection" in metrics
            else None,
        )
    return metrics
