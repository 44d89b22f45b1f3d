"""Test-set metrics with bootstrap intervals and the counts behind them.

Every number a report shows comes with what it rests on (n, error counts, support), because "F1 0.91" on
40 rows and on 4000 rows are different claims. Intervals are percentile bootstraps over test rows (or
documents, for spans), seeded, so a report is reproducible.

scikit-learn computes every metric it provides; bootstrap resamples are passed to the same sklearn
functions (as ``sample_weight`` = how often each row was drawn, which is exactly a resample) so the point
estimate and its interval can never disagree on a definition. Pure numpy/sklearn: no torch here.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    confusion_matrix,
    log_loss,
    precision_recall_fscore_support,
    roc_auc_score,
    roc_curve,
)

from routerforge.errors import RouterforgeError
from routerforge.evaluation.calibration import expected_calibration_error

CI_LEVEL = 0.95


# --------------------------------------------------------------------------------------------- bootstrap
def _draw_counts(n: int, n_boot: int, seed: int) -> np.ndarray:
    """``(n_boot, n)`` matrix: how often each row is drawn in each resample (rows sum to n)."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n)) + (np.arange(n_boot) * n)[:, None]
    return np.bincount(idx.ravel(), minlength=n_boot * n).reshape(n_boot, n)


def _ci(samples: np.ndarray) -> list[float] | None:
    samples = np.asarray(samples, dtype=float)
    samples = samples[~np.isnan(samples)]
    if samples.size == 0:
        return None
    alpha = (1 - CI_LEVEL) / 2 * 100
    lo, hi = np.percentile(samples, [alpha, 100 - alpha])
    return [float(lo), float(hi)]


def _with_ci(value: float, samples: np.ndarray | None) -> dict:
    return {"value": float(value), "ci95": _ci(samples) if samples is not None else None}


def _bootstrap_info(n_boot: int, seed: int, unit: str) -> dict:
    return {"n_boot": n_boot, "seed": seed, "method": f"percentile bootstrap over {unit}", "level": CI_LEVEL}


# ------------------------------------------------------------------------------------- classification
def _prf(y_true, y_pred, labels, weight=None) -> dict[str, Any]:
    """Per-class P/R/F1 from sklearn plus their macro and support-weighted means (sklearn's definitions)."""
    p, r, f, s = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, average=None, sample_weight=weight, zero_division=0
    )
    out: dict[str, Any] = {"per_class": (p, r, f, s)}
    for name, x in (("precision", p), ("recall", r), ("f1", f)):
        out[f"macro_{name}"] = float(np.mean(x))
        out[f"weighted_{name}"] = float(np.average(x, weights=s))
    return out


def _prf_resampled(yt: np.ndarray, yp: np.ndarray, k: int, w: np.ndarray) -> dict[str, np.ndarray]:
    """:func:`_prf`'s macro and weighted means for every resample at once (``w``: ``(n_boot, n)`` draw counts),
    each over the labels that resample has support for. The same definitions as sklearn's
    ``precision_recall_fscore_support(zero_division=0)``, as counts: one matrix product instead of n_boot calls."""
    classes = np.arange(k)
    true = w @ (yt[:, None] == classes)  # (n_boot, k) support
    pred = w @ (yp[:, None] == classes)
    tp = w @ ((yt == yp)[:, None] & (yt[:, None] == classes))
    with np.errstate(divide="ignore", invalid="ignore"):
        scores = {
            "precision": np.where(pred > 0, tp / pred, 0.0),
            "recall": np.where(true > 0, tp / true, 0.0),
            "f1": np.where(true + pred > 0, 2 * tp / (true + pred), 0.0),
        }
    supported = true > 0
    out = {}
    for name, x in scores.items():
        out[f"macro_{name}"] = (x * supported).sum(axis=1) / supported.sum(axis=1)
        out[f"weighted_{name}"] = (x * true).sum(axis=1) / true.sum(axis=1)
    return out


def classification_metrics(
    y_true: list[int],
    y_pred: list[int],
    labels: list[str],
    probs: np.ndarray | None = None,
    *,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict:
    """Accuracy, macro/weighted P/R/F1 with 95% intervals, per-class table and confusion matrix.

    ``y_true``/``y_pred`` are indices into ``labels``. Macro averages run over labels that have test support
    only: a label absent from the test set has no recall to average, and counting it as 0 (sklearn's default
    when it is listed) would punish the model for the data. Those labels are listed separately. Predictions
    of such a label still count as errors (they lower the true class's recall).
    """
    yt, yp = np.asarray(y_true, dtype=int), np.asarray(y_pred, dtype=int)
    k = len(labels)
    if yt.shape != yp.shape or yt.ndim != 1 or yt.size == 0:
        raise RouterforgeError(
            f"classification metrics need equal, non-empty y_true/y_pred; got {yt.shape}, {yp.shape}"
        )
    for name, y in (("y_true", yt), ("y_pred", yp)):
        if y.min() < 0 or y.max() >= k:
            raise RouterforgeError(f"{name} holds a label index outside 0..{k - 1} ({k} labels)")
    n = yt.size
    counts = np.bincount(yt, minlength=k)
    supported = [i for i in range(k) if counts[i] > 0]

    point = _prf(yt, yp, supported)
    accuracy = accuracy_score(yt, yp)
    boot: dict[str, np.ndarray] = {}
    if n_boot > 0:
        w = _draw_counts(n, n_boot, seed)
        boot["accuracy"] = w @ (yt == yp) / n
        # each resample averages over the labels it has support for, the same rule as the point estimate
        # (otherwise a rare class missing from a resample would count as recall 0)
        boot |= _prf_resampled(yt, yp, k, w)

    out: dict[str, Any] = {
        "kind": "classification",
        "n": int(n),
        "n_errors": int((yt != yp).sum()),
        "accuracy": _with_ci(accuracy, boot.get("accuracy")),
        "macro_over": "labels with test support",
        "labels_without_support": [labels[i] for i in range(k) if counts[i] == 0],
        "bootstrap": _bootstrap_info(n_boot, seed, "test rows"),
    }
    for key, value in point.items():
        if key != "per_class":
            out[key] = _with_ci(value, boot.get(key))
    p, r, f, s = point["per_class"]
    out["per_class"] = [
        {"label": labels[i], "precision": float(p[j]), "recall": float(r[j]), "f1": float(f[j]), "support": int(s[j])}
        for j, i in enumerate(supported)
    ]
    out["confusion_matrix"] = confusion_matrix(yt, yp, labels=list(range(k))).tolist()
    out["confusion_matrix_labels"] = list(labels)  # rows: true label, columns: predicted label
    if probs is not None:
        pr = np.asarray(probs, dtype=float)
        if pr.shape != (n, k):
            raise RouterforgeError(f"probs must have shape (n, n_labels) = ({n}, {k}); got {pr.shape}")
        out["ece"] = expected_calibration_error(pr, yt)
        out["nll"] = float(log_loss(yt, pr, labels=list(range(k))))
    return out


# ------------------------------------------------------------------------------------ binary detection
def _counts_at(yt: np.ndarray, p: np.ndarray, threshold: float | None) -> dict:
    """Confusion counts for the rule "flag when p >= threshold" (threshold None: flag nothing)."""
    flagged = p >= threshold if threshold is not None else np.zeros_like(yt, dtype=bool)
    tp = int((flagged & (yt == 1)).sum())
    fp = int((flagged & (yt == 0)).sum())
    n_pos, n_neg = int((yt == 1).sum()), int((yt == 0).sum())
    return {
        "threshold": threshold,
        "recall": tp / n_pos,
        "fpr": fp / n_neg,
        "precision": tp / (tp + fp) if tp + fp else None,
        "tp": tp,
        "fp": fp,
        "fn": n_pos - tp,
        "tn": n_neg - fp,
        "n_pos": n_pos,
        "n_neg": n_neg,
    }


def _ranking_resampled(yt: np.ndarray, p: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ROC-AUC and average precision of every resample at once (``w``: ``(n_boot, n)`` draw counts), equal to
    sklearn's ``roc_auc_score`` / ``average_precision_score`` on each resample: the rows grouped by distinct
    score, weighted counts per group, then the Mann-Whitney sum (ties count half) and the step-wise
    precision-recall sum. Resamples holding one class have neither and are dropped."""
    order = np.argsort(p, kind="stable")
    scores, weights, positive = p[order], w[:, order].astype(float), yt[order] == 1
    starts = np.flatnonzero(np.r_[True, scores[1:] != scores[:-1]])  # first row of each distinct score
    pos = np.add.reduceat(weights * positive, starts, axis=1)  # (n_boot, groups), ascending score
    neg = np.add.reduceat(weights * ~positive, starts, axis=1)
    n_pos, n_neg = pos.sum(axis=1), neg.sum(axis=1)
    keep = (n_pos > 0) & (n_neg > 0)
    pos, neg, n_pos, n_neg = pos[keep], neg[keep], n_pos[keep], n_neg[keep]
    below = np.cumsum(neg, axis=1) - neg  # negatives scored strictly lower than the group
    auc = (pos * (below + 0.5 * neg)).sum(axis=1) / (n_pos * n_neg)
    tp, fp = np.cumsum(pos[:, ::-1], axis=1), np.cumsum(neg[:, ::-1], axis=1)  # flagged at each threshold, high first
    precision = np.divide(tp, tp + fp, out=np.zeros_like(tp), where=tp + fp > 0)
    ap = (pos[:, ::-1] / n_pos[:, None] * precision).sum(axis=1)  # recall step x precision at that step
    return auc, ap


def binary_detection_metrics(
    y_true: list[int],
    p_positive: np.ndarray,
    *,
    fpr_targets: Sequence[float] = (0.01, 0.05),
    threshold: float | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict:
    """ROC-AUC and PR-AUC with 95% intervals, and recall at fixed false-positive rates, with counts.

    Recall at an FPR target uses the highest-recall threshold whose FPR *on this data* is <= the target:
    an oracle operating point for this test set, fine for comparing models. The threshold actually deployed
    is chosen on validation data; pass it as ``threshold`` to get the honest counts at it under
    ``at_threshold``. The rule is always "flag when p_positive >= threshold".
    """
    yt, p = np.asarray(y_true, dtype=int), np.asarray(p_positive, dtype=float)
    if yt.shape != p.shape or yt.ndim != 1:
        raise RouterforgeError(f"y_true and p_positive must be 1-d and equally long; got {yt.shape}, {p.shape}")
    if not set(np.unique(yt)) <= {0, 1}:
        raise RouterforgeError("binary detection needs y_true in {0, 1}")
    n_pos, n_neg = int((yt == 1).sum()), int((yt == 0).sum())
    if n_pos == 0 or n_neg == 0:
        raise RouterforgeError(
            f"binary detection needs both classes in the test data; got {n_pos} positives, {n_neg} negatives"
        )

    auc, ap = roc_auc_score(yt, p), average_precision_score(yt, p)
    auc_s = ap_s = np.empty(0)
    skipped = 0
    if n_boot > 0:
        auc_s, ap_s = _ranking_resampled(yt, p, _draw_counts(yt.size, n_boot, seed))
        skipped = n_boot - auc_s.size

    fpr, tpr, thr = roc_curve(yt, p, drop_intermediate=False)
    at_fpr = []
    for target in fpr_targets:
        ok = np.flatnonzero(fpr <= target)
        best = ok[np.argmax(tpr[ok])]  # first max: the highest threshold reaching that recall
        t = float(thr[best]) if np.isfinite(thr[best]) else None  # roc_curve's first threshold is +inf
        row = {"target_fpr": float(target), **_counts_at(yt, p, t)}
        if n_neg * target < 1:
            row["note"] = (
                f"only {n_neg} negatives: one false positive is already FPR {1 / n_neg:.3g}, so FPR {target:g} "
                f"cannot be resolved; at least {math.ceil(1 / target)} negatives are needed"
            )
        at_fpr.append(row)

    out = {
        "kind": "binary_detection",
        "n": int(yt.size),
        "n_pos": n_pos,
        "n_neg": n_neg,
        "roc_auc": _with_ci(auc, auc_s if n_boot > 0 else None),
        "pr_auc": _with_ci(ap, ap_s if n_boot > 0 else None),
        "at_fpr": at_fpr,
        "at_fpr_basis": "threshold chosen on this test data (an oracle operating point), flag when p >= threshold",
        "bootstrap": {**_bootstrap_info(n_boot, seed, "test rows"), "skipped_one_class": skipped},
    }
    if threshold is not None:
        out["at_threshold"] = _counts_at(yt, p, float(threshold))
    return out


# ------------------------------------------------------------------------------------------------ spans
# Why not seqeval or sklearn: sklearn has no span metric, and seqeval scores BIO tag sequences over
# *tokens*, so its result depends on the tokenizer and cannot see a span that is off by one character
# inside a token. Our spans are character offsets into the original text (what the runtime returns and
# what a redactor uses), so we match them directly: a multiset intersection of (type, start, end).
def _span_key(s: Any) -> tuple[str, int, int]:
    if isinstance(s, dict):
        return (str(s["entity_type"]), int(s["start"]), int(s["end"]))
    return (str(s.entity_type), int(s.start), int(s.end))


def _prf_counts(tp, fp, fn):
    """Micro P/R/F1 from counts (arrays allowed); 0 where undefined, like sklearn's zero_division=0."""
    tp, fp, fn = (np.asarray(x, dtype=float) for x in (tp, fp, fn))
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        r = np.where(tp + fn > 0, tp / (tp + fn), 0.0)
        f = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
    return p, r, f


def _f2_counts(tp, fp, fn):
    """F2 (recall weighted twice, as Presidio's evaluator reports): 5 tp / (5 tp + 4 fn + fp)."""
    tp, fp, fn = (np.asarray(x, dtype=float) for x in (tp, fp, fn))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(5 * tp + 4 * fn + fp > 0, 5 * tp / (5 * tp + 4 * fn + fp), 0.0)


def _overlap_hits(gold: list[tuple[str, int, int]], pred: list[tuple[str, int, int]]) -> Counter:
    """Per type, gold spans matched one to one by a same-type predicted span that overlaps them (in order)."""
    used: set[int] = set()
    hits: Counter = Counter()
    for t, a, b in sorted(gold, key=lambda k: k[1]):
        for i, (pt, pa, pb) in enumerate(pred):
            if i not in used and pt == t and pa < b and a < pb:
                used.add(i)
                hits[(t, a, b)] += 1
                break
    return hits


def span_metrics(
    gold: list[list[Any]],
    pred: list[list[Any]],
    *,
    min_support: int = 10,
    n_boot: int = 1000,
    seed: int = 0,
    matching: str = "exact",
) -> dict:
    """Entity-level P/R/F1 (and F2) over character spans, micro-averaged, with a document bootstrap.

    ``matching="exact"``: a predicted span is a true positive only if entity_type, start and end all equal a
    gold span's; an off-by-one boundary is one false positive plus one false negative, as is a wrong type.
    ``matching="overlap"``: a same-type predicted span that overlaps a gold span matches it (one to one), so
    a boundary off by a word still counts (what a redaction that covers the value needs). Text outside
    any span (the ``O`` tag) never counts: we compare spans, not tokens, so it cannot. Spans may be
    ``Span`` objects or dicts with ``entity_type``/``start``/``end``. Per-type rows are given only for types
    with at least ``min_support`` gold spans; the rest are listed with their counts.
    """
    if len(gold) != len(pred):
        raise RouterforgeError(
            f"span metrics need one prediction list per document; got {len(gold)} gold, {len(pred)} pred"
        )
    if matching not in ("exact", "overlap"):
        raise RouterforgeError(f"unknown span matching {matching!r}", hint="exact or overlap")
    doc_counts = np.zeros((len(gold), 3), dtype=int)  # tp, fp, fn per document
    by_type: dict[str, Counter] = {}
    for d, (g_doc, p_doc) in enumerate(zip(gold, pred)):
        g, p = Counter(map(_span_key, g_doc)), Counter(map(_span_key, p_doc))
        hit = g & p if matching == "exact" else _overlap_hits(list(g.elements()), list(p.elements()))
        tp = sum(hit.values())
        doc_counts[d] = (tp, sum(p.values()) - tp, sum(g.values()) - tp)
        for key, c in g.items():
            by_type.setdefault(key[0], Counter())["support"] += c
        for key, c in p.items():
            by_type.setdefault(key[0], Counter())["predicted"] += c
        for key, c in hit.items():
            by_type[key[0]]["tp"] += c

    tp, fp, fn = (int(x) for x in doc_counts.sum(axis=0))
    point = _prf_counts(tp, fp, fn)
    point = (*point, _f2_counts(tp, fp, fn))
    samples: list[np.ndarray | None] = [None, None, None, None]
    if n_boot > 0 and len(gold) > 0:
        boot = _draw_counts(len(gold), n_boot, seed) @ doc_counts  # (n_boot, 3) summed counts
        samples = [*_prf_counts(boot[:, 0], boot[:, 1], boot[:, 2]), _f2_counts(boot[:, 0], boot[:, 1], boot[:, 2])]

    per_type, below = [], []
    for t in sorted(by_type):
        type_counts = by_type[t]
        support, predicted, t_tp = type_counts["support"], type_counts["predicted"], type_counts["tp"]
        if support >= min_support:
            p_t, r_t, f_t = _prf_counts(t_tp, predicted - t_tp, support - t_tp)
            per_type.append(
                {
                    "entity_type": t,
                    "precision": float(p_t),
                    "recall": float(r_t),
                    "f1": float(f_t),
                    "support": support,
                    "tp": t_tp,
                    "fp": predicted - t_tp,
                    "fn": support - t_tp,
                }
            )
        else:
            below.append({"entity_type": t, "support": support, "predicted": predicted})

    return {
        "kind": "spans",
        "matching": "exact (entity_type, start, end) on character offsets"
        if matching == "exact"
        else "overlap (same entity_type, overlapping character ranges, one to one)",
        "n_docs": len(gold),
        "n_gold": tp + fn,
        "n_pred": tp + fp,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "micro_precision": _with_ci(point[0], samples[0]),
        "micro_recall": _with_ci(point[1], samples[1]),
        "micro_f1": _with_ci(point[2], samples[2]),
        "micro_f2": _with_ci(point[3], samples[3]),
        "min_support": min_support,
        "per_type": per_type,
        "types_below_min_support": below,
        "bootstrap": _bootstrap_info(n_boot, seed, "documents"),
    }


# -------------------------------------------------------------------------------------- paired difference
def _span_doc_counts(gold: list[list[Any]], pred: list[list[Any]]) -> np.ndarray:
    """``(n_docs, 3)``: exact-match tp, fp, fn per document."""
    counts = np.zeros((len(gold), 3), dtype=int)
    for d, (g_doc, p_doc) in enumerate(zip(gold, pred)):
        g, p = Counter(map(_span_key, g_doc)), Counter(map(_span_key, p_doc))
        tp = sum((g & p).values())
        counts[d] = (tp, sum(p.values()) - tp, sum(g.values()) - tp)
    return counts


def paired_difference(gold, reference, candidate, *, labels: int | None = None, n_boot: int = 1000, seed: int = 0):
    """``candidate``'s metric minus ``reference``'s on the same rows, with a paired 95% bootstrap interval: each
    resample draws the same rows for both, so the interval is that of the difference (much narrower than two
    separate intervals). Classification (``labels`` = number of classes; indices): macro F1 over the labels with
    support in the resample, as :func:`classification_metrics`; spans (``labels=None``; one span list per
    document): exact-match micro F1, as :func:`span_metrics`."""
    if labels is not None:
        yt, yr, yc = (np.asarray(y, dtype=int) for y in (gold, reference, candidate))
        w = _draw_counts(yt.size, n_boot, seed)
        supported = list(np.unique(yt))
        value = _prf(yt, yc, supported)["macro_f1"] - _prf(yt, yr, supported)["macro_f1"]
        diffs = _prf_resampled(yt, yc, labels, w)["macro_f1"] - _prf_resampled(yt, yr, labels, w)["macro_f1"]
    else:
        ref, cand = _span_doc_counts(gold, reference), _span_doc_counts(gold, candidate)
        value = float(_prf_counts(*cand.sum(axis=0))[2] - _prf_counts(*ref.sum(axis=0))[2])
        w = _draw_counts(len(gold), n_boot, seed)
        diffs = _prf_counts(*(w @ cand).T)[2] - _prf_counts(*(w @ ref).T)[2]
    return _with_ci(value, diffs) | {"bootstrap": _bootstrap_info(n_boot, seed, "paired rows")}


# ---------------------------------------------------------------------------------------------- latency
def latency_summary(seconds: Iterable[float]) -> dict:
    """p50/p99/mean latency in milliseconds, with n (p99 of a few dozen calls is close to the max)."""
    ms = np.asarray(list(seconds), dtype=float) * 1000.0
    if ms.size == 0:
        return {"kind": "latency", "n": 0, "p50_ms": None, "p99_ms": None, "mean_ms": None}
    p50, p99 = np.percentile(ms, [50, 99])
    return {
        "kind": "latency",
        "n": int(ms.size),
        "p50_ms": float(p50),
        "p99_ms": float(p99),
        "mean_ms": float(ms.mean()),
    }
