"""Does the exported model answer like the PyTorch one? Checked on the model's own validation split(s).

Per head, over the first window of every validation text: the largest absolute logit difference (of the scores
as served: a label head's lexical prior mixed in, the same on both sides) and the share of identical served
labels (argmax per text, or per token for PII; for jailbreak the flag at the model's calibrated threshold, which
is what the runtime answers). fp32 exports must match to 1e-3 with every label the same.

int8 rounds every logit a little, so a near-tie may flip; a 99%-agreement rule says nothing about quality on a
14-way head full of near-ties and refuses good models. The int8 gate instead asks three things per head
(docs/export.md):

1. **No confident label changes.** ``error`` = the 99th percentile of the per-row largest |logit difference|;
   a label can only flip where the PyTorch margin (top-1 minus top-2 logit; for jailbreak the distance of the
   logit difference from the threshold) is at most ``2 x error``. Rows with a wider margin must keep their
   label: at most one in ``CONFIDENT_CHANGES_PER`` may change (none below that many), because a p99 error
   leaves 1% of rows past it and a token head has thousands of tokens.
2. **Non-inferior quality.** The head's metric (macro F1; exact-span entity F1 for PII) of int8 minus PyTorch on
   the same rows, with a paired bootstrap: the lower 95% bound must be >= -``NI_MARGIN``. A small label head's
   interval also reads training rows (``interval_rows``; the exporter tops it up to 1,000 rows).
3. **Calibration not worse** (sequence heads): int8 ECE <= PyTorch ECE + ``ECE_MARGIN``.

The model selector (a multi-label head; its gold answers are per-model outcomes, not in any manifest) is held to
gate 1 on its chosen model (the argmax), and to the fp32 rules like every head.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import RouterforgeError

FP32_MAX_DIFF = 1e-3
ERROR_QUANTILE = 99  # percentile of the per-row int8 logit error that defines "confident"
NI_MARGIN = 0.02  # non-inferiority margin on the head's metric (absolute: two points of F1)
ECE_MARGIN = 0.01
CONFIDENT_CHANGES_PER = 1000  # at most 0.1% of confident labels may change (none on fewer than 1,000 rows)
INT8_CRITERIA = (
    f"at most 1 in {CONFIDENT_CHANGES_PER} labels changed where the torch margin exceeds 2x the p{ERROR_QUANTILE} "
    "int8 logit error; metric "
    f"non-inferior (paired bootstrap lower 95% bound of int8 - torch >= -{NI_MARGIN}); ECE <= torch + {ECE_MARGIN}"
)
FP32_CRITERIA = f"max |logit diff| <= {FP32_MAX_DIFF} and 100% label agreement"


class ParityError(RouterforgeError):
    """An export that does not answer like the PyTorch model; ``parity`` holds the per-head numbers."""

    def __init__(self, message: str, parity: dict, **where):
        super().__init__(message, **where)
        self.parity = parity


def _margins(router, head: str, rows: list[np.ndarray]) -> np.ndarray:
    """How far each served label is from changing, in logits: top-1 minus top-2 (per text, or per token), or for
    the jailbreak flag the distance of ``logit_jailbreak - logit_other`` from the threshold's value of it."""
    names = router.heads[head]["label_names"]
    if not rows:
        return np.zeros(0)
    if head == "jailbreak" and "jailbreak" in names:
        k = names.index("jailbreak")
        threshold = float(np.clip(router.threshold, 1e-6, 1 - 1e-6))
        at = router.temperature[head] * np.log(threshold / (1 - threshold))
        return np.array([abs(r[k] - np.delete(r, k).max() - at) for r in rows])
    top2 = np.concatenate([np.sort(np.atleast_2d(r), axis=-1)[:, -2:] for r in rows])
    return top2[:, 1] - top2[:, 0]


def _labels(router, head: str, rows: list[np.ndarray]) -> np.ndarray:
    """The labels the runtime would serve from these logits (per text, or per token for a token head)."""
    from ..numerics import softmax

    names = router.heads[head]["label_names"]
    if head == "jailbreak" and "jailbreak" in names:
        k = names.index("jailbreak")
        return np.array([softmax(r, router.temperature[head])[k] >= router.threshold for r in rows])
    return np.concatenate([np.atleast_1d(r.argmax(-1)) for r in rows]) if rows else np.zeros(0)


def _quality(reference, candidate, head: str, examples: list, extra: list, cache: dict) -> dict:
    """Gates 2 and 3 from what each router serves: the paired metric difference on ``examples`` and the
    ``extra`` rows, both ECEs on ``examples``."""
    from ..evaluation.calibration import expected_calibration_error
    from ..evaluation.evaluator import head_answers
    from ..evaluation.metrics import paired_difference

    rows = examples + extra
    key = ("answers", head, tuple(e.text for e in rows))
    if key not in cache:
        cache[key] = head_answers(reference, head, rows)
    ref, cand = cache[key], head_answers(candidate, head, rows)
    sequence = "names" in ref
    difference = paired_difference(
        ref["gold"], ref["pred"], cand["pred"], labels=len(ref["names"]) if sequence else None, n_boot=1000
    )
    out: dict[str, Any] = {
        "metric": "macro_f1" if sequence else "entity_f1",
        "difference": difference["value"],
        "difference_ci95": difference["ci95"],
        "non_inferior": bool(difference["ci95"] is not None and difference["ci95"][0] >= -NI_MARGIN),
    }
    if extra:
        out["training_rows"] = len(extra)
    if sequence:
        n = len(examples)
        ece = [expected_calibration_error(a["probs"][:n], a["gold"][:n]) for a in (ref, cand)]
        out |= {"ece_torch": ece[0], "ece_exported": ece[1], "ece_not_worse": bool(ece[1] <= ece[0] + ECE_MARGIN)}
    return out


def describe(record: dict) -> str:
    """One head's parity record in a line (CLI table, pipeline warning): the int8 gate's parts, else the label
    agreement of an fp32 check."""
    if "confident" not in record:
        return f"label agreement {record['label_agreement']:.1%}"
    parts = [f"{record['confident_changed']} of {record['confident']} confident changed"]
    if "difference" in record:
        low, high = record["difference_ci95"] or (float("nan"), float("nan"))
        parts.append(f"{record['metric']} {record['difference']:+.4f} [{low:+.4f}, {high:+.4f}]")
        if record.get("training_rows"):
            parts[-1] += f" on {record['rows'] + record['training_rows']} rows ({record['training_rows']} training)"
    if "ece_torch" in record:
        parts.append(f"ECE {record['ece_torch']:.3f} -> {record['ece_exported']:.3f}")
    return "; ".join(parts)


def check_parity(
    reference,
    candidate,
    splits: dict[str, list],
    quantised: bool,
    cache: dict | None = None,
    interval_rows: dict[str, list] | None = None,
) -> dict:
    """Compare two Routers (PyTorch ``reference``, exported ``candidate``) on ``{head: validation examples}``;
    ``passed`` says whether every head meets the criteria for its precision. ``interval_rows``: more rows per
    head for gate 2's interval only (a small head's training rows). ``cache`` keeps the reference's answers, by
    head and texts, for the next candidate (the int8 recipes in turn)."""
    heads, passed, cache = {}, True, {} if cache is None else cache
    for head, examples in splits.items():
        texts = [e.text for e in examples]
        key = ("logits", head, tuple(texts))
        if key not in cache:  # scores as served
            cache[key] = reference.with_prior(head, reference.window_logits(texts)[head], texts)
        ref = cache[key]
        cand = candidate.with_prior(head, candidate.window_logits(texts)[head], texts)
        row_diff = np.concatenate([np.abs(r - c).reshape(-1, r.shape[-1]).max(-1) for r, c in zip(ref, cand) if r.size])
        same = _labels(reference, head, ref) == _labels(candidate, head, cand)
        record: dict[str, Any] = {
            "rows": len(texts),
            "max_abs_logit_diff": float(row_diff.max()) if row_diff.size else 0.0,
            "label_agreement": float(same.mean()) if same.size else 1.0,
            "compared": "tokens" if reference.heads[head]["kind"] == "token" else "texts",
        }
        generated = sum(e.source.startswith("generated:") for e in examples)
        if generated:
            record["generated_rows"] = generated
        if quantised:
            error = float(np.percentile(row_diff, ERROR_QUANTILE)) if row_diff.size else 0.0
            confident = _margins(reference, head, ref) > 2 * error
            record |= {
                "logit_error_p99": error,
                "confident": int(confident.sum()),
                "confident_changed": int((confident & ~same).sum()),
            }
            if reference.heads[head]["kind"] != "multilabel":  # the selector's gold is in the outcomes, not here
                extra = (interval_rows or {}).get(head, [])
                record |= _quality(reference, candidate, head, examples, extra, cache)
            ok = (
                record["confident_changed"] <= record["confident"] // CONFIDENT_CHANGES_PER
                and record.get("non_inferior", True)
                and record.get("ece_not_worse", True)
            )
        else:
            ok = record["max_abs_logit_diff"] <= FP32_MAX_DIFF and record["label_agreement"] == 1.0
        record["passed"] = bool(ok)
        passed &= ok
        heads[head] = record
    return {"passed": bool(passed), "criteria": INT8_CRITERIA if quantised else FP32_CRITERIA, "heads": heads}
