"""Quality of the multitask bundle vs the per-task models, task by task, on the same test rows.

    python benchmarks/multitask_vs_pertask.py runs/local-data/bundle category=models/category \\
        pii=models/pii-e10 jailbreak=models/jailbreak intent=models/intent-e8 [--output FILE.json]

Both sides are scored through the same runtime (torch backend, calibrated as each model's routerforge.json
says) with the same metric code as ``routerforge eval``; the script refuses to compare a task whose
test splits differ (and reports how many train/validation rows differ). For each task the bundle's metric is
placed against the per-task model's 95% bootstrap interval ("inside", "above" or "below").
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Table

from routerforge.bundle import head_data
from routerforge.data import load_split_from_manifest
from routerforge.evaluation.evaluator import evaluate_examples
from routerforge.io import write_json
from routerforge.runtime.engine import Router


def headline_metrics(metrics: dict) -> dict[str, dict]:
    """The metrics with intervals worth comparing, per task kind."""
    if "spans" in metrics:
        return {"entity_f1": metrics["spans"]["micro_f1"]}
    c = metrics["classification"]
    out = {"macro_f1": c["macro_f1"], "accuracy": c["accuracy"]}
    if "detection" in metrics:
        out["roc_auc"] = metrics["detection"]["roc_auc"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundle")
    parser.add_argument("per_task", nargs="+", metavar="TASK=DIR")
    parser.add_argument("--output", default=None)
    args = parser.parse_args()

    bundle = Router.load(args.bundle, "torch")
    rows, results = [], {}
    for item in args.per_task:
        task, _, path = item.partition("=")
        single = Router.load(path, "torch")
        manifest = head_data(bundle.info, task)["manifest"]
        other = head_data(single.info, task)["manifest"]["splits"]
        if other["test"] != manifest["splits"]["test"]:
            raise SystemExit(f"{task}: the per-task model and the bundle have different test splits")
        moved = {
            split: len({tuple(r) for r in other[split]} ^ {tuple(r) for r in manifest["splits"][split]})
            for split in ("train", "val")
        }
        test = load_split_from_manifest(manifest, "test")
        per_task, multitask = (headline_metrics(evaluate_examples(r, task, test)) for r in (single, bundle))
        results[task] = {
            "rows": len(test),
            "per_task_model": path,
            "per_task": per_task,
            "multitask": multitask,
            "train_val_rows_that_differ": moved,
        }
        for name, reference in per_task.items():
            value, (lo, hi) = multitask[name]["value"], reference["ci95"]
            verdict = "inside" if lo <= value <= hi else ("above" if value > hi else "below")
            rows.append(
                (
                    task,
                    name,
                    f"{reference['value']:.4f} [{lo:.4f}, {hi:.4f}]",
                    f"{value:.4f} [{multitask[name]['ci95'][0]:.4f}, {multitask[name]['ci95'][1]:.4f}]",
                    verdict,
                )
            )
    table = Table(title=f"test splits: per-task models vs the multitask bundle {args.bundle}")
    for column in ("task", "metric", "per-task [95% CI]", "multitask [95% CI]", "multitask vs per-task CI"):
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    Console().print(table)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        write_json(args.output, results)


if __name__ == "__main__":
    main()
