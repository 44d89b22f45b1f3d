"""Jailbreak detection under obfuscation: detection rate and false positives on disguised test prompts.

    python benchmarks/robustness.py MODEL_DIR [MODEL_DIR...] [--normalisation model|identity|robust-v1|robust-v2]
                                    [--output benchmarks/results/robustness.json] [--seed 0]

Each model's jailbreak TEST split is re-read from its own manifest (hash-checked, as ``routerforge eval`` does;
a bundle keeps one per head). Every test prompt, both classes, is disguised with the transforms the training
augmentation uses (:mod:`routerforge.data.augment`), with a different seed and benign padding drawn from the
test split's own benign rows: clean, spaced, benign_suffix, buried (after 3 benign paragraphs), upper, leet,
zero_width, homoglyph, upper+leet. Per variant: detection rate on jailbreak prompts (flagged at the model's
calibrated threshold, ``k/n``), false-positive rate on disguised benign prompts, and the same for the benign
prompts that look like role-play ("You are ...", "Act as ...", "Pretend ...", "Imagine ..."). Also the clean
test ROC-AUC. Long variants are windowed by the Router (the most suspicious window decides).
``--normalisation``: ``model`` = what the model records (absent: identity); otherwise an override, e.g. the new
normaliser on old weights.
"""

from __future__ import annotations

import argparse
import random
import re
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table
from sklearn.metrics import roc_auc_score

from routerforge.data.augment import BENCHMARK_VARIANTS, variants
from routerforge.evaluation.evaluator import head_splits
from routerforge.io import write_json
from routerforge.runtime.engine import Router
from routerforge.text.normalise import NORMALISERS

ROLE_PLAY = re.compile(r"^\W*(you are|you're|act as|acting as|pretend|imagine|role-?play|let's play)\b", re.IGNORECASE)


def _count(flags: list[bool]) -> dict:
    k, n = int(sum(flags)), len(flags)
    return {"k": k, "n": n, "rate": k / n if n else None}


def _load(model: str, normalisation: str) -> Router:
    return Router.load(model, normalisation=None if normalisation == "model" else normalisation)


def measure(model: str, normalisation: str, seed: int) -> dict:
    router = _load(model, normalisation)
    if "jailbreak" not in router.heads:
        raise SystemExit(f"{model} has no jailbreak head")
    test = head_splits(router.info, ["jailbreak"], ("test",))["jailbreak"]["test"]
    filler = [e.text for e in test if e.label != "jailbreak"]
    attack = [e.label == "jailbreak" for e in test]
    role_play = [not a and bool(ROLE_PLAY.match(e.text)) for e, a in zip(test, attack)]
    texts = {name: [] for name in BENCHMARK_VARIANTS}
    for e in test:
        for name, text in variants(e.text, random.Random(f"robustness:{seed}:{e.key}"), filler).items():
            texts[name].append(text)
    started = time.perf_counter()
    result = {
        "model": model,
        "backend": router.backend_name,
        "threshold": router.threshold,
        "normalisation": {"recorded": router.info.get("normalisation"), "requested": normalisation},
        "test_rows": len(test),
        "jailbreak_rows": sum(attack),
        "benign_rows": len(test) - sum(attack),
        "role_play_benign_rows": sum(role_play),
        "variants": {},
    }
    for name, batch in texts.items():
        signals = router.classify_batch(batch)
        flagged = [s.jailbreak.flagged for s in signals]
        if name == "clean":
            result["clean_roc_auc"] = float(roc_auc_score(attack, [s.jailbreak.p_jailbreak for s in signals]))
        result["variants"][name] = {
            "detection": _count([f for f, a in zip(flagged, attack) if a]),
            "fpr": _count([f for f, a in zip(flagged, attack) if not a]),
            "fpr_role_play": _count([f for f, r in zip(flagged, role_play) if r]),
            "windows": sum(s.windows for s in signals),
            "truncated": sum(s.truncated for s in signals),
            "example": batch[attack.index(True)][:300],
        }
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


def _cell(count: dict) -> str:
    return f"{count['rate']:.3f} ({count['k']}/{count['n']})" if count["n"] else "-"


def table(result: dict) -> Table:
    out = Table(
        title=f"{result['model']} [{result['backend']}, normalisation {result['normalisation']['requested']}"
        f", threshold {result['threshold']:.3f}]: clean ROC-AUC {result['clean_roc_auc']:.4f}"
    )
    for column in ("variant", "detection", "FPR", "FPR role-play", "windows"):
        out.add_column(column)
    for name, v in result["variants"].items():
        out.add_row(name, _cell(v["detection"]), _cell(v["fpr"]), _cell(v["fpr_role_play"]), str(v["windows"]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", help="per-task jailbreak models or multitask bundles")
    parser.add_argument("--normalisation", default="model", choices=("model", *NORMALISERS))
    parser.add_argument("--output", default="benchmarks/results/robustness.json")
    parser.add_argument("--seed", type=int, default=0, help="seed of the disguises (training uses its own)")
    args = parser.parse_args()

    console = Console()
    results = {
        "seed": args.seed,
        "normalisation": args.normalisation,
        "variants": {name: list(chain) for name, chain in BENCHMARK_VARIANTS.items()},
        "models": [],
    }
    for model in args.models:
        result = measure(model, args.normalisation, args.seed)
        results["models"].append(result)
        console.print(table(result))
        console.print(f"{result['seconds']}s to classify {len(BENCHMARK_VARIANTS)} x {result['test_rows']} prompts")
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    write_json(args.output, results)
    console.print(f"written to {args.output}")


if __name__ == "__main__":
    main()
