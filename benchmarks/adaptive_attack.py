"""An adaptive black-box attacker against the served jailbreak head: greedy benign padding, up to 100 queries.

    python benchmarks/adaptive_attack.py MODEL_DIR [--backend onnx-int8] [--queries 100] [--per-step 10]
                                         [--seed 0] [--split test] [--output benchmarks/results/adaptive-attack.json]

For each jailbreak of the model's TEST split (re-read from its manifest) that the model flags, the attacker
appends or prepends benign material, a word or a sentence at a time: each step it tries ``--per-step`` candidates
(drawn from the benign rows of the VALIDATION split: never the test rows it is scored on; with ``--split val``,
the validation jailbreaks are attacked with padding from the training split, for decisions: the pool
``routerforge adversarial`` pads with, so it favours a model trained on such rows), reads the served
``p_jailbreak`` of each (one query each), and keeps the one that lowers it most. The attack succeeds when a
candidate is no longer flagged at the model's calibrated threshold; it stops at ``--queries``. Reported: the
flip rate with a 95% Clopper-Pearson interval, median queries and words added to flip, and what the defence
costs on benign prompts: the false-positive rate on the split's benign prompts alone and joined in pairs (each
with the next, as earlier reports; and every ordered pair of two different prompts, with a 95% interval from a
bootstrap over prompts, since the pairs share their prompts), and its clean ROC-AUC. The search is
:func:`routerforge.data.adversarial.greedy_padding`, which ``routerforge adversarial`` also runs on a model's
training jailbreaks to make adversarial training rows.
"""

from __future__ import annotations

import argparse
import random
import statistics
from pathlib import Path

import numpy as np
from scipy.stats import binomtest
from sklearn.metrics import roc_auc_score

from _pii import report
from guard_traffic import other_heads_texts
from routerforge.data.adversarial import file_rows, greedy_padding, padding_pool
from routerforge.evaluation.evaluator import head_splits
from routerforge.runtime.engine import Router

POOL_SPLIT = {"test": "val", "val": "train"}  # where the padding comes from: never the rows under attack


MAX_PAIR_PROMPTS = 100  # every ordered pair of n prompts is n(n - 1) texts: a larger split is sampled first


def joined_pairs(router: Router, benign: list[str], n_boot: int = 1000, seed: int = 0) -> dict | None:
    """Every ordered pair ``a + " " + b`` of two different benign prompts (at most :data:`MAX_PAIR_PROMPTS`
    prompts, sampled): the share flagged, and the share among pairs of two prompts that are not flagged alone (what
    joining itself adds), each with a percentile bootstrap over prompts (a resample keeps the pairs of the prompts
    it draws, each weighted by both draws); None with fewer than 2 prompts."""
    if len(benign) > MAX_PAIR_PROMPTS:
        benign = random.Random(seed).sample(benign, MAX_PAIR_PROMPTS)
    n = len(benign)
    if n < 2:
        return None
    alone = np.array([s.jailbreak.flagged for s in router.classify_batch(benign)], dtype=bool)
    pairs = [(i, j) for i in range(n) for j in range(n) if i != j]
    flagged = np.zeros((n, n))
    for (i, j), s in zip(pairs, router.classify_batch([benign[i] + " " + benign[j] for i, j in pairs])):
        flagged[i, j] = s.jailbreak.flagged
    draws = np.random.default_rng(seed).multinomial(n, [1 / n] * n, size=n_boot).astype(float)

    def rate(keep: np.ndarray) -> dict:
        """Pairs of two different kept prompts: flagged / all, in the data and in each resample."""
        w = draws * keep
        with np.errstate(invalid="ignore", divide="ignore"):  # a resample with under two kept prompts: no pair
            rates = np.einsum("bi,ij,bj->b", w, flagged, w) / (w.sum(1) ** 2 - (w**2).sum(1))
        kept = np.flatnonzero(keep)
        total = len(kept) * (len(kept) - 1)
        hits = int(flagged[np.ix_(kept, kept)].sum())
        ci = [float(q) for q in np.nanpercentile(rates, [2.5, 97.5])] if total else None
        return {"pairs": total, "flagged": hits, "rate": hits / total if total else None, "ci95": ci}

    return {
        "every_pair": rate(np.ones(n, dtype=bool)),
        "prompts_flagged_alone": int(alone.sum()),
        "pairs_of_prompts_not_flagged_alone": rate(~alone),
        "prompts_in_flagged_pairs": len(set(np.argwhere(flagged).ravel().tolist())),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model")
    parser.add_argument("--backend", default=None, help="default: the fastest passing export")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--per-step", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--split", choices=sorted(POOL_SPLIT), default="test", help="val: for decisions")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()

    router = Router.load(args.model, args.backend)
    pool_split = POOL_SPLIT[args.split]
    splits = head_splits(router.info, ["jailbreak"], (pool_split, args.split))["jailbreak"]
    rows = splits[args.split]
    pool = padding_pool([e.text for e in file_rows(splits[pool_split]) if e.label != "jailbreak"])
    benign = [e.text for e in rows if e.label != "jailbreak"]
    signals = router.classify_batch([e.text for e in rows])
    caught = [e.text for e, s in zip(rows, signals) if e.label == "jailbreak" and s.jailbreak.flagged]
    rng = random.Random(args.seed)
    runs = [greedy_padding(router, t, pool, rng, args.queries, args.per_step) for t in caught]
    flipped = [r for r in runs if r["flipped"]]
    ci = binomtest(len(flipped), len(runs)).proportion_ci(0.95, method="exact") if runs else None
    pairs = [a + " " + b for a, b in zip(benign, benign[1:] + benign[:1])]
    traffic = other_heads_texts(router, args.split)
    result = {
        "model": args.model,
        "backend": router.backend_name,
        "threshold": router.threshold,
        "attacker": {"queries": args.queries, "per_step": args.per_step, "pool": len(pool), "seed": args.seed},
        "split": args.split,
        "jailbreaks_in_split": sum(e.label == "jailbreak" for e in rows),
        "caught": len(caught),
        "flipped": len(flipped),
        "flip_rate": len(flipped) / len(runs) if runs else None,
        "flip_rate_ci95": [ci.low, ci.high] if ci else None,
        "median_queries_to_flip": statistics.median(r["queries"] for r in flipped) if flipped else None,
        "median_words_added": statistics.median(r["words_added"] for r in flipped) if flipped else None,
        "clean_roc_auc": roc_auc_score(
            [e.label == "jailbreak" for e in rows], [s.jailbreak.p_jailbreak for s in signals]
        ),
        "benign_fpr": sum(s.jailbreak.flagged for s in router.classify_batch(benign)) / len(benign),
        "joined_benign_fpr": sum(s.jailbreak.flagged for s in router.classify_batch(pairs)) / len(pairs),
        "joined_benign_all_pairs": joined_pairs(router, benign),
        "benign_rows": len(benign),
        "flagged_in_other_heads": {
            head: {"rows": len(texts), "flagged": sum(s.jailbreak.flagged for s in router.classify_batch(texts))}
            for head, texts in traffic.items()
        },
    }
    report(result, args.output, runs=runs)


if __name__ == "__main__":
    main()
