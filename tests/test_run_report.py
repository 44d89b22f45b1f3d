"""The run report (runs/NAME/report/) and the model card (README.md), on hand-built run directories.

Models here are ``routerforge.json`` files with metrics computed by ``evaluation.metrics`` on seeded random
predictions: the report reads records, it never runs a model unless asked to measure latency.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from routerforge.config import ProjectConfig
from routerforge.evaluation.evaluator import prediction_rows
from routerforge.evaluation.metrics import binary_detection_metrics, classification_metrics, span_metrics
from routerforge.reports.eval_report import PREDICTIONS_FILE
from routerforge.reports.model_card import identify_source, write_model_card
from routerforge.reports.run_report import probabilities_before_scaling, write_run_report
from routerforge.runtime.engine import softmax
from routerforge.runtime.signals import JailbreakSignal, LabelSignal, PiiSpan, Signals

CATEGORY = ["law", "math", "other"]
JAILBREAK = ["benign", "jailbreak"]
INTENT = ["calculation", "communication", "no_function_needed"]
VERSIONS = {"routerforge": "0.1.0", "torch": "2.13.0+cpu", "transformers": "5.23.0", "python": "3.11.7"}
LOG_HISTORY = [{"loss": 1.0 - 0.1 * i, "epoch": 0.5 * (i + 1), "step": 10 * (i + 1)} for i in range(4)] + [
    {"eval_loss": 0.8, "eval_macro_f1": 0.6, "eval_runtime": 1.0, "epoch": 1.0, "step": 20},
    {"eval_loss": 0.7, "eval_macro_f1": 0.7, "eval_runtime": 1.0, "epoch": 2.0, "step": 40},
]


def _scores(task: str, names: list[str], seed: int, n: int = 80) -> tuple[dict, list[dict]]:
    """Metrics (as evaluate writes them) and predictions.jsonl rows for random but informative probabilities."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, len(names), n)
    logits = rng.normal(size=(n, len(names)))
    logits[np.arange(n), y] += 2.5
    probs = softmax(logits, 0.7)
    pred = probs.argmax(axis=1)
    metrics = {"classification": classification_metrics(y.tolist(), pred.tolist(), names, probs, n_boot=20)}
    if task == "jailbreak":
        metrics["detection"] = binary_detection_metrics(y.tolist(), probs[:, 1], n_boot=20, threshold=0.6)
    rows = [
        {"hash": f"h{i}", "gold": names[y[i]], "pred": names[pred[i]], "probs": dict(zip(names, map(float, probs[i])))}
        for i in range(n)
    ]
    return metrics, rows


def _span_scores() -> dict:
    from routerforge.data.schema import Span

    gold = [[Span("PERSON", 0, 4), Span("EMAIL_ADDRESS", 10, 20)] for _ in range(30)]
    pred = [[Span("PERSON", 0, 4)] if i % 3 else [Span("PERSON", 0, 5)] for i in range(30)]
    return {"spans": span_metrics(gold, pred, n_boot=20, min_support=5)}


def _data(task: str, labels: list[str], sources: list[str]) -> dict:
    report = {
        "rows_read": 100,
        "rows_in_unused_splits": {},
        "rows_dropped_by_loader": {"no_rule_matches": 3},
        "duplicates_removed": 4,
        "conflicting_label_rows_dropped": 1,
        "near_duplicates_moved_to_train": {"val": 2, "test": 1, "threshold": 0.9},
        "rows_per_split": {"train": 72, "val": 10, "test": 10},
        "labels_per_split": {s: {label: n for label in labels} for s, n in (("train", 24), ("val", 3), ("test", 3))},
        "labels_without_test_support": [],
        "fingerprint": f"fp-{task}",
        "rows_longer_than_training_window": {"train": 5, "val": 1, "window": 128},
    }
    manifest = {
        "task": task,
        "labels": labels,
        "fingerprint": f"fp-{task}",
        "load_options": {"data": sources},
        "sources": [{"path": p, "sha256": "ab" * 32, "rows": 100} for p in sources],
        "splits": {},
    }
    return {"manifest": manifest, "report": report}


def _calibration(task: str, unit: str = "text") -> dict:
    summary = {"n": 10, "ece_before": 0.12, "ece_after": 0.05, "nll_before": 0.6, "nll_after": 0.5}
    record = {"temperature": 1.4, "fitted_on": "val", "unit": unit, "val": summary, "test": summary}
    if task == "jailbreak":
        record["threshold"] = {
            "target_fpr": 0.01,
            "resolvable": False,
            "tp": 4,
            "fp": 0,
            "fn": 1,
            "tn": 5,
            "fpr": 0.0,
            "recall": 0.8,
        }
        record["threshold_on_test"] = {"tp": 5, "fp": 1, "fn": 0, "tn": 4, "fpr": 0.2, "recall": 1.0}
    return record


def _per_task_info(task: str, labels: list[str], sources: list[str], test: dict, exports: dict | None = None) -> dict:
    info = {
        "schema_version": 1,
        "task": task,
        "kind": "sequence",
        "labels": labels,
        "label_names": labels,
        "backbone": {"name": "minilm", "path": "/x", "model_type": "bert"},
        "hyperparams": {"epochs": 2.0, "batch_size": 16, "lr": 5e-5},
        "lora": None,
        "crf": False,
        "max_length": 128,
        "data": _data(task, labels, sources),
        "training": {"seconds": 12.5, "global_steps": 40, "log_history": LOG_HISTORY},
        "calibration": {task: _calibration(task)},
        "thresholds": {"jailbreak": 0.6} if task == "jailbreak" else {},
        "versions": VERSIONS,
        "created": "2026-01-02T03:04:05+00:00",
        "metrics": {"val": test, "test": test},
    }
    if exports:
        info["exports"] = exports
    return info


def _bundle_info() -> dict:
    jailbreak, _ = _scores("jailbreak", JAILBREAK, seed=5)
    pii = _span_scores()
    heads = {
        "jailbreak": {"kind": "sequence", "labels": JAILBREAK, "label_names": JAILBREAK, "crf": False},
        "pii": {
            "kind": "token",
            "labels": ["EMAIL_ADDRESS", "PERSON"],
            "label_names": ["O", "B-EMAIL_ADDRESS", "I-EMAIL_ADDRESS", "B-PERSON", "I-PERSON"],
            "crf": False,
        },
    }
    return {
        "schema_version": 1,
        "task": "multitask",
        "kind": "multitask",
        "heads": heads,
        "backbone": {"name": "minilm", "path": "/x", "model_type": "bert"},
        "hyperparams": {"epochs": 4.0},
        "multitask": {"sampling": {"jailbreak": 0.5, "pii": 0.5}},
        "lora": None,
        "crf": False,
        "max_length": 128,
        "data": {
            "jailbreak": _data("jailbreak", JAILBREAK, ["/d/jailbreak/train.jsonl"]),
            "pii": _data("pii", ["EMAIL_ADDRESS", "PERSON"], ["/d/presidio_pii/synth_dataset_v2.jsonl"]),
        },
        "training": {"seconds": 30.0, "log_history": []},
        "calibration": {"jailbreak": _calibration("jailbreak"), "pii": _calibration("pii", "token")},
        "thresholds": {"jailbreak": 0.7},
        "versions": VERSIONS,
        "created": "2026-01-02T05:00:00+00:00",
        "metrics": {"jailbreak": {"val": jailbreak, "test": jailbreak}, "pii": {"val": pii, "test": pii}},
    }


def _write(path: Path, payload) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, default=lambda v: v.tolist()))


def _config(mode: str, tasks: dict[str, list[str]]) -> ProjectConfig:
    return ProjectConfig.model_validate(
        {"name": "demo-run", "tasks": {t: {"data": d} for t, d in tasks.items()}, "training": {"mode": mode}}
    )


@pytest.fixture
def full_run(tmp_path) -> tuple[Path, ProjectConfig]:
    """mode both: per-task category (evaluated) and jailbreak (evaluated, exported), a bundle (not evaluated)."""
    run = tmp_path / "runs" / "demo-run"
    for task, labels, sources in (
        ("category", CATEGORY, ["/d/mmlu_pro/questions.jsonl"]),
        ("jailbreak", JAILBREAK, ["/d/jailbreak/train.jsonl"]),
    ):
        metrics, rows = _scores(task, labels, seed=len(task))
        exports = (
            {
                "onnx-int8": {
                    "file": "model.int8.onnx",
                    "size_mb": 21.9,
                    "recipe": "int8-per-channel",
                    "parity": {"passed": True, "criteria": "label agreement >= 99%"},
                }
            }
            if task == "jailbreak"
            else None
        )
        _write(run / "models" / task / "routerforge.json", _per_task_info(task, labels, sources, metrics, exports))
        evaluated = metrics | {
            "latency": {"kind": "latency", "n": 10, "p50_ms": 3.0, "p99_ms": 5.0, "mean_ms": 3.2},
            "evaluated_on": {
                "split": "test",
                "rows": 80,
                "model": str(run / "models" / task),
                "task": task,
                "temperature": 1.4,
            },
        }
        _write(run / "eval" / task / task / "metrics.json", evaluated)
        (run / "eval" / task / task / PREDICTIONS_FILE).write_text("".join(json.dumps(r) + "\n" for r in rows))
    _write(run / "bundle" / "routerforge.json", _bundle_info())
    _write(run / "data" / "category.json", _data("category", CATEGORY, ["/d/mmlu_pro/questions.jsonl"]))
    _write(
        run / "pipeline.json",
        {
            "stage_order": ["data", "train", "calibrate", "eval", "export", "report"],
            "stages": {
                "data": {
                    "status": "done",
                    "seconds": 1.1,
                    "input_hash": "abc123",
                    "ran": ["category"],
                    "skipped": ["jailbreak"],
                    "items": {
                        "category": {"seconds": 1.0},  # ran now
                        "jailbreak": {"seconds": 0.5},
                    },
                },  # earlier
                "train": {"status": "done", "seconds": 40.0, "ran": [], "items": {}},
            },
        },
    )
    config = _config(
        "both",
        {
            "category": ["mmlu_pro/questions.jsonl"],
            "jailbreak": ["jailbreak/train.jsonl"],
            "pii": ["presidio_pii/synth_dataset_v2.jsonl"],
        },
    )
    return run, config


class _Refs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs: list[tuple[str, str, str]] = []
        self.alts: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for name in ("src", "href"):
            if attrs.get(name) is not None:
                self.refs.append((tag, name, attrs[name]))
        if tag == "img":
            self.alts.append(attrs.get("alt") or "")


def _check_assets(page: Path) -> _Refs:
    """Every img is a data: URI or an existing file; links are #fragments or existing files; nothing remote."""
    text = page.read_text(encoding="utf-8")
    parser = _Refs()
    parser.feed(text)
    for tag, name, ref in parser.refs:
        assert not re.match(r"(https?:)?//", ref), (tag, name, ref[:80])
        if ref.startswith("data:"):
            assert tag == "img" and ref.startswith("data:image/png;base64,")
        elif not ref.startswith("#"):
            assert (page.parent / ref).exists(), (tag, name, ref)
    assert "http://" not in text and "https://" not in text
    assert "<script" not in text and "<link" not in text
    return parser


def test_run_report_has_every_section(full_run):
    run, config = full_run
    page = write_run_report(
        run, config, latency={"models/jailbreak": {"backend": "onnx-int8", "p50_ms": 4.2, "p99_ms": 9.1, "n": 30}}
    )
    assert page == run / "report" / "index.html" and page.is_file()
    markdown = (run / "report" / "report.md").read_text()
    text = page.read_text()
    parser = _check_assets(page)
    alts = " | ".join(parser.alts)
    # first screen: run, backbone, headline rows with intervals, the jailbreak threshold and its test TPR/FPR
    assert "routerforge run: demo-run" in text and "backbone minilm (bert)" in text and "mode both" in text
    summary = markdown.split("### Pipeline stages")[0]
    assert re.search(r"\| models/category \| category \| macro F1: [\d.]+ \[[\d.]+, [\d.]+\] \| 80 \|", summary)
    assert re.search(r"\| models/jailbreak \| jailbreak \| ROC-AUC: .* \| 0\.600 \| .* \| 4\.2 ms \|", summary)
    assert "| bundle | pii | span F1 (exact)" in summary
    assert "not run" in summary  # category latency not measured, bundle not evaluated
    # per-task sections: metrics with intervals, per-class tables, figures
    for task in ("category", "jailbreak", "pii"):
        assert f"Task: {task}" in text
    assert "macro precision" in markdown and "| label | precision | recall | F1 | support |" in markdown
    assert "| entity type | precision | recall | F1 | support | TP | FP | FN |" in markdown
    assert "category (models/category): confusion matrix on test" in alts
    assert "jailbreak (models/jailbreak): ROC and precision-recall on test" in alts
    assert "jailbreak (models/jailbreak): reliability" in alts and "before and after temperature scaling" in alts
    assert "models/category: training and validation curves" in alts
    assert "no predictions.jsonl" in markdown  # the bundle's jailbreak head has no eval stage output
    assert "| val | 10 | 0.120 | 0.050 |" in markdown  # calibration before/after
    assert "Flag when P(jailbreak) >= **0.6000**" in markdown
    # data summary, exports, stages, config and versions
    assert "exact duplicates removed" in markdown and "near-duplicates moved to train" in markdown
    assert "truncated for training" in markdown and "MIT (dataset card" in markdown
    assert "| models/jailbreak | onnx-int8 | model.int8.onnx |" in markdown
    assert "| data | done | 1.5 s | 1 ran, 1 unchanged | abc123 |" in markdown  # the work behind the outputs
    assert "| export | not run |" in markdown
    assert "near_duplicate_threshold: 0.9" in text and "transformers" in markdown and "5.23.0" in markdown
    # Markdown: the same tables, plots as files next to it
    images = re.findall(r"!\[[^\]]*\]\((img/[^)]+)\)", markdown)
    assert len(images) == len(parser.alts) >= 6
    assert all((run / "report" / image).is_file() for image in images)
    summary_json = json.loads((run / "report" / "summary.json").read_text())
    assert {r["model"] for r in summary_json["headline"]} == {
        "models/category",
        "models/jailbreak",
        "models/pii",
        "bundle",
    }
    assert "| models/pii | pii | not run (model missing) |" in markdown  # mode both: expected, not there


def test_missing_pieces_say_not_run(tmp_path):
    """Mode both, but only the jailbreak model exists, with no eval, no export, no pipeline.json, no latency."""
    run = tmp_path / "runs" / "demo-run"
    metrics, _ = _scores("jailbreak", JAILBREAK, seed=1)
    info = _per_task_info("jailbreak", JAILBREAK, ["/d/own_prompts.csv"], metrics)
    del info["calibration"], info["thresholds"], info["training"]["log_history"]
    _write(run / "models" / "jailbreak" / "routerforge.json", info)
    config = _config("both", {"jailbreak": ["own_prompts.csv"], "intent": ["intents.jsonl"]})
    page = write_run_report(run, config, latency={})
    _check_assets(page)
    markdown = (run / "report" / "report.md").read_text()
    assert "| models/intent | intent | not run (model missing) |" in markdown
    assert "| bundle | jailbreak | not run (model missing) |" in markdown
    assert "not run (no pipeline.json)" in markdown
    assert "not run (no temperature fitted)" in markdown and "not run (no threshold chosen" in markdown
    assert "not run (no Trainer log history recorded)" in markdown
    assert "| models/jailbreak | not run |" in markdown  # exports
    assert "unknown, check the source" in markdown
    assert "scored at training time" in markdown  # no eval stage: the training record's test metrics
    # written again over the first report: replaced as a whole
    assert write_run_report(run, config, latency={}) == page


def test_empty_run_directory(tmp_path):
    page = write_run_report(tmp_path / "runs" / "nothing", _config("per-task", {"category": ["q.jsonl"]}), latency={})
    _check_assets(page)
    assert "not run (model missing)" in page.read_text()


def test_model_card_names_licences_and_attribution(tmp_path):
    metrics, _ = _scores("intent", INTENT, seed=3)
    sources = [
        "/d/intent/clinc150.jsonl",
        "/d/intent/banking77.jsonl",
        "/d/function_calling/bfcl_v4_queries.jsonl",
        "/home/me/private_intents.csv",
    ]
    info = _per_task_info("intent", INTENT, sources, metrics)
    _write(tmp_path / "model" / "routerforge.json", info)
    card = write_model_card(tmp_path / "model", _config("per-task", {"intent": ["clinc150.jsonl"]}))
    assert card == tmp_path / "model" / "README.md"
    text = card.read_text()
    assert "CC BY 3.0" in text and "Larson" in text and "An Evaluation Dataset for Intent Classification" in text
    assert "CC BY 4.0" in text and "Casanueva" in text and "required by the CC BY licence" in text
    assert "Apache-2.0" in text and "unknown, check the source" in text
    assert "## Intended use" in text and "Not intended as a content moderator of record" in text
    assert "| intent | sequence | calculation, communication, no_function_needed |" in text
    assert "| intent | 72 | 10 | 10 | fp-intent |" in text  # splits with fingerprint
    assert re.search(r"\| intent \| macro F1 \| [\d.]+ \[[\d.]+, [\d.]+\] \|", text)
    assert "English only" in text and "routerforge serve DIR --config router.yaml" in text
    assert "routerforge classify DIR" in text and "Router.load" in text
    assert "## Run configuration" in text and "name: demo-run" in text


def test_model_card_of_a_bundle(tmp_path):
    _write(tmp_path / "bundle" / "routerforge.json", _bundle_info())
    text = write_model_card(tmp_path / "bundle").read_text()
    assert "multitask bundle (one encoder, 2 heads)" in text
    assert "Presidio" in text and "MIT" in text and "jackhhao/jailbreak-classification" in text
    assert "PII: trained on short, single-sentence synthetic" in text
    assert "too few to resolve the target FPR" in text and "P(jailbreak) >= **0.7000**" in text


@pytest.mark.parametrize(
    ("spec", "name"),
    [
        ("/d/mmlu_pro/questions.jsonl", "MMLU-Pro"),
        ("hf:TIGER-Lab/MMLU-Pro", "MMLU-Pro"),
        ("/d/presidio_pii/synth_dataset_v2.jsonl", "Presidio research synthetic PII data"),
        ("hf:jackhhao/jailbreak-classification", "jackhhao/jailbreak-classification"),
        ("/d/glaive_toolcall_en_demo.jsonl", "Glaive function calling v2"),
        ("/d/snips_2017.jsonl", "SNIPS NLU benchmark (2017)"),
        ("synth:200", "routerforge synthetic data (routerforge.data.synth)"),
        ("/d/my_data.csv", None),
    ],
)
def test_sources_are_identified_by_name(spec, name):
    source = identify_source(spec)
    assert (source.name if source else None) == name


def test_probabilities_before_scaling_undo_the_temperature():
    logits = np.random.default_rng(0).normal(scale=3, size=(50, 4))
    after = softmax(logits, 1.7)
    assert np.allclose(probabilities_before_scaling(after, 1.7), softmax(logits), atol=1e-9)


def test_prediction_rows_have_hash_gold_prediction_and_probabilities():
    from routerforge.data.schema import Example, Span

    router = SimpleNamespace(
        heads={
            "jailbreak": {"kind": "sequence", "label_names": JAILBREAK},
            "category": {"kind": "sequence", "label_names": CATEGORY},
            "pii": {"kind": "token", "label_names": ["O", "B-PERSON", "I-PERSON"]},
        }
    )
    signals = [
        Signals(
            jailbreak=JailbreakSignal("jailbreak", 0.9, True, 0.5),
            category=LabelSignal("math", 0.7, {"law": 0.1, "math": 0.7, "other": 0.2}),
            pii=[PiiSpan("PERSON", 5, 9, "John", 0.88)],
        )
    ]
    example = Example(text="Call John", label="jailbreak")
    (row,) = prediction_rows(router, "jailbreak", [example], signals)
    assert row["gold"] == "jailbreak" and row["pred"] == "jailbreak" and len(row["hash"]) >= 8
    assert row["probs"] == pytest.approx({"benign": 0.1, "jailbreak": 0.9}) and "text" not in row
    (row,) = prediction_rows(router, "category", [Example(text="Call John", label="law")], signals)
    assert row["probs"]["math"] == 0.7 and row["pred"] == "math"
    (row,) = prediction_rows(router, "pii", [Example(text="Call John", spans=[Span("PERSON", 5, 9)])], signals)
    assert row["gold"] == [["PERSON", 5, 9]] and row["pred"] == [["PERSON", 5, 9, 0.88]]


@pytest.fixture
def small_run(tmp_path) -> tuple[Path, ProjectConfig]:
    """One per-task jailbreak model, nothing else."""
    run = tmp_path / "runs" / "demo-run"
    metrics, _ = _scores("jailbreak", JAILBREAK, seed=2)
    _write(
        run / "models" / "jailbreak" / "routerforge.json",
        _per_task_info("jailbreak", JAILBREAK, ["/d/jailbreak/train.jsonl"], metrics),
    )
    return run, _config("per-task", {"jailbreak": ["jailbreak/train.jsonl"]})


def test_latency_json_is_read(small_run):
    run, config = small_run
    _write(run / "latency.json", {"jailbreak": {"onnx-int8": {"p50_ms": 2.5, "p99_ms": 3.5, "n": 30}}})
    write_run_report(run, config)
    markdown = (run / "report" / "report.md").read_text()
    assert "| models/jailbreak | onnx-int8 | 2.5 ms | 3.5 ms | 30 |" in markdown
    assert re.search(r"\| models/jailbreak \| jailbreak \| .* \| 2\.5 ms \| training record \|", markdown)


def test_latency_is_measured_without_one(small_run, monkeypatch):
    run, config = small_run

    class FakeRouter:
        backend_name = "torch"
        calls = 0

        def classify(self, text):
            FakeRouter.calls += 1

    from routerforge.runtime import engine

    monkeypatch.setattr(engine.Router, "load", classmethod(lambda cls, path, *a, **k: FakeRouter()))
    write_run_report(run, config)
    markdown = (run / "report" / "report.md").read_text()
    assert re.search(r"\| models/jailbreak \| torch \| [\d.]+ ms \| [\d.]+ ms \| 30 \| short synthetic \|", markdown)
    assert "(torch; no int8 export)" in markdown  # the headline says which backend it measured
    assert FakeRouter.calls == 3 + 30  # warm-up + timed requests


def test_summary_warns_about_small_tests_failed_pii_types_and_unfitted_temperatures(full_run):
    """80 test rows, a PII type never found and a temperature kept at 1 are said under the headline table."""
    run, config = full_run
    info_path = run / "models" / "category" / "routerforge.json"
    info = json.loads(info_path.read_text())
    info["calibration"]["category"] |= {
        "temperature": 1.0,
        "temperature_status": "skipped",
        "temperature_note": "10 validation texts, fewer than 100: too few to fit T, kept T = 1",
    }
    info_path.write_text(json.dumps(info))
    write_run_report(run, config)
    summary = (run / "report" / "report.md").read_text().split("### Pipeline stages")[0]
    assert "### Read these numbers with care" in summary
    assert re.search(
        r"models/category category: macro F1 [\d.]+ \(95% CI \[[\d.]+, [\d.]+\]\) on 80 test rows", summary
    )
    assert "models/jailbreak jailbreak: ROC-AUC" in summary
    assert "bundle pii: 1 of 2 scored entity types have F1 0, none found exactly: EMAIL_ADDRESS (0 of 30)" in summary
    assert "models/category category: temperature skipped: 10 validation texts, fewer than 100" in summary
    assert "temperature skipped" not in summary.split("models/jailbreak jailbreak")[1]  # jailbreak's T was fitted

    # a test set of 150 rows is large enough: no warning for it
    metrics, _ = _scores("category", CATEGORY, seed=8, n=150)
    eval_path = run / "eval" / "category" / "category" / "metrics.json"
    evaluated = json.loads(eval_path.read_text())
    evaluated |= metrics
    evaluated["evaluated_on"]["rows"] = 150
    eval_path.write_text(json.dumps(evaluated))
    write_run_report(run, config)
    summary = (run / "report" / "report.md").read_text().split("### Pipeline stages")[0]
    assert "models/category category: macro F1" not in summary
    assert "models/jailbreak jailbreak: ROC-AUC" in summary
