"""Does the exported model answer like the PyTorch one? Checked on the model's own validation split(s).

Per head: the largest absolute logit difference and the share of identical served labels (argmax per text, or
per token for PII; for jailbreak the flag at the model's calibrated threshold, which is what the runtime
answers), both over the first window of every validation text; for int8 also the head's task metric,
which must fall inside the PyTorch model's 95% bootstrap interval.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import RouterforgeError

FP32_MAX_DIFF = 1e-3
INT8_MIN_AGREEMENT = 0.99


class ParityError(RouterforgeError):
    """An export that does not answer like the PyTorch model; ``parity`` holds the per-head numbers."""

    def __init__(self, message: str, parity: dict, **where):
        super().__init__(message, **where)
        self.parity = parity


def _metric(metrics: dict) -> tuple[str, float, list[float]]:
    if "spans" in metrics:
        m = metrics["spans"]["micro_f1"]
        return "entity_f1", m["value"], m["ci95"]
    m = metrics["classification"]["macro_f1"]
    return "macro_f1", m["value"], m["ci95"]


def _labels(router, head: str, rows: list[np.ndarray]) -> np.ndarray:
    """The labels the runtime would serve from these logits (per text, or per token for a token head)."""
    from ..numerics import softmax

    names = router.heads[head]["label_names"]
    if head == "jailbreak" and "jailbreak" in names:
        k = names.index("jailbreak")
        return np.array([softmax(r, router.temperature[head])[k] >= router.threshold for r in rows])
    return np.concatenate([np.atleast_1d(r.argmax(-1)) for r in rows]) if rows else np.zeros(0)


def check_parity(reference, candidate, splits: dict[str, list], quantised: bool) -> dict:
    """Compare two Routers (PyTorch ``reference``, exported ``candidate``) on ``{head: validation examples}``;
    ``passed`` says whether every head meets the thresholds for its precision."""
    from ..evaluation.evaluator import evaluate_examples

    heads, passed = {}, True
    for head, examples in splits.items():
        texts = [e.text for e in examples]
        ref, cand = reference.window_logits(texts)[head], candidate.window_logits(texts)[head]
        diff = max((float(np.abs(r - c).max()) for r, c in zip(ref, cand) if r.size), default=0.0)
        same = _labels(reference, head, ref) == _labels(candidate, head, cand)
        record: dict[str, Any] = {
            "rows": len(texts),
            "max_abs_logit_diff": diff,
            "label_agreement": float(same.mean()) if same.size else 1.0,
            "compared": "tokens" if reference.heads[head]["kind"] == "token" else "texts",
        }
        if quantised:
            name, value, ci = _metric(evaluate_examples(reference, head, examples, n_boot=500))
            _, exported, _ = _metric(evaluate_examples(candidate, head, examples, n_boot=50))
            record |= {
                "metric": name,
                "torch": value,
                "torch_ci95": ci,
                "exported": exported,
                "metric_inside_interval": bool(ci[0] <= exported <= ci[1]),
            }
            ok = record["label_agreement"] >= INT8_MIN_AGREEMENT and record["metric_inside_interval"]
        else:
            ok = diff <= FP32_MAX_DIFF and record["label_agreement"] == 1.0
        record["passed"] = bool(ok)
        passed &= ok
        heads[head] = record
    criteria = (
        f"label agreement >= {INT8_MIN_AGREEMENT:.0%} and metric inside the torch 95% interval"
        if quantised
        else f"max |logit diff| <= {FP32_MAX_DIFF} and 100% label agreement"
    )
    return {"passed": bool(passed), "criteria": criteria, "heads": heads}
