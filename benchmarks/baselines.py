"""TF-IDF + logistic regression on a trained model's own split, side by side with the model's test metrics.

    python benchmarks/baselines.py models/category [models/intent ...]

The baseline is fitted on the model's train split (re-read from its manifest, hash-checked), its C chosen on
the validation split, and scored on the test split with the same metric code as ``routerforge eval``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score

from routerforge.data import load_split_from_manifest
from routerforge.evaluation.metrics import classification_metrics

C_GRID = (1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0)


def tfidf_lr(train, val, test, labels):
    """Fit word 1-2-gram TF-IDF + LR for each C, keep the best macro F1 on validation, return test metrics."""
    index = {label: i for i, label in enumerate(labels)}
    y_train, y_val, y_test = ([index[e.label] for e in rows] for rows in (train, val, test))
    vectoriser = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2)
    x_train = vectoriser.fit_transform([e.text for e in train])
    x_val, x_test = (vectoriser.transform([e.text for e in rows]) for rows in (val, test))
    best = None
    for c in C_GRID:
        model = LogisticRegression(C=c, max_iter=3000, class_weight="balanced").fit(x_train, y_train)
        score = f1_score(y_val, model.predict(x_val), average="macro")
        if best is None or score > best[0]:
            best = (score, c, model)
    _, c, model = best
    probs = np.zeros((len(test), len(labels)))
    probs[:, model.classes_] = model.predict_proba(x_test)
    metrics = classification_metrics(y_test, probs.argmax(1).tolist(), list(labels), probs)
    return metrics, {"C": c, "val_macro_f1": best[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", type=Path, help="sequence-task model directories")
    parser.add_argument("--json", type=Path, help="also write the comparison here")
    args = parser.parse_args()
    console, results = Console(width=150), {}
    table = Table(title="fine-tuned model vs TF-IDF + LR, same test split")
    for column in ("model", "rows", "system", "accuracy [95% CI]", "macro F1 [95% CI]", "errors"):
        table.add_column(column)
    for model_dir in args.models:
        info = json.loads((model_dir / "routerforge.json").read_text())
        if info["kind"] != "sequence":
            console.print(f"skipping {model_dir}: baselines are for sequence tasks")
            continue
        manifest = info["data"]["manifest"]
        started = time.perf_counter()
        splits = {name: load_split_from_manifest(manifest, name) for name in ("train", "val", "test")}
        baseline, chosen = tfidf_lr(splits["train"], splits["val"], splits["test"], info["labels"])
        seconds = time.perf_counter() - started
        ours = info["metrics"]["test"]["classification"]
        results[str(model_dir)] = {
            "model": ours,
            "tfidf_lr": baseline,
            "tfidf_lr_settings": chosen,
            "tfidf_lr_seconds": seconds,
        }

        def cell(m, key):
            lo, hi = m[key]["ci95"]
            return f"{m[key]['value']:.4f} [{lo:.3f}, {hi:.3f}]"

        for name, m in (
            (f"{info['backbone']['name']}{' LoRA' if info['lora'] else ''}", ours),
            (f"TF-IDF + LR (C={chosen['C']:g}, {seconds:.0f}s)", baseline),
        ):
            table.add_row(
                str(model_dir), str(m["n"]), name, cell(m, "accuracy"), cell(m, "macro_f1"), f"{m['n_errors']}/{m['n']}"
            )
    console.print(table)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
