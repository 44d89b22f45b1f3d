"""What the jailbreak head makes of the prompts a router serves: on one split of a bundle, the jailbreak head's own
ROC-AUC and recall at its threshold, and the share of the other heads' texts (exam questions, tool requests, PII
rows) it flags and scores >= 0.5; optionally on samples of other benign files too.

    python benchmarks/guard_traffic.py MODEL [--split val] [--backend onnx-int8]
                                       [--benign DATA/intent/clinc150.jsonl ...] [--sample 1000] [--output FILE]

Decisions are made on ``--split val``; the test split is for reporting.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from _pii import read_jsonl, report
from routerforge.evaluation.evaluator import head_splits
from routerforge.runtime.engine import Router


def jailbreak_scores(router: Router, texts: list[str]) -> np.ndarray:
    """The served ``p_jailbreak`` of each text."""
    return np.array([s.jailbreak.p_jailbreak for s in router.classify_batch(texts, batch_size=16)])


def other_heads_texts(router: Router, split: str) -> dict[str, list[str]]:
    """The texts of every head but jailbreak in ``split``: the prompts the router serves. A head that reads another's
    texts (the model selector reads category's questions) is not counted twice."""
    others = [head for head in router.heads if head != "jailbreak"]
    out: dict[str, list[str]] = {}
    for head, rows in head_splits(router.info, others, (split,)).items():
        texts = [e.text for e in rows[split]]
        if texts not in out.values():
            out[head] = texts
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model")
    parser.add_argument("--split", default="val", choices=("val", "test"))
    parser.add_argument("--backend", default=None, help="default: the fastest passing export")
    parser.add_argument("--benign", type=Path, nargs="*", default=[], help="JSONL files of benign prompts (text)")
    parser.add_argument("--sample", type=int, default=1000, help="rows drawn from each --benign file")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()

    router = Router.load(args.model, args.backend)
    jailbreak = head_splits(router.info, ["jailbreak"], (args.split,))["jailbreak"][args.split]
    p = jailbreak_scores(router, [e.text for e in jailbreak])
    y = np.array([e.label == "jailbreak" for e in jailbreak])
    rng = random.Random(0)
    texts = other_heads_texts(router, args.split)
    for file in args.benign:
        prompts = [r["text"] for r in read_jsonl(file)]
        texts[file.stem] = rng.sample(prompts, min(args.sample, len(prompts)))
    result = {
        "model": args.model,
        "backend": router.backend_name,
        "split": args.split,
        "threshold": router.threshold,
        "jailbreak": {
            "rows": len(y),
            "roc_auc": roc_auc_score(y, p),
            "recall": float((p[y] >= router.threshold).mean()),
        },
        "benign": {},
    }
    for name, batch in texts.items():
        q = jailbreak_scores(router, batch)
        result["benign"][name] = {
            "rows": len(q),
            "flagged": float((q >= router.threshold).mean()),
            "scored_over_half": float((q >= 0.5).mean()),
        }
    report(result, args.output)


if __name__ == "__main__":
    main()
