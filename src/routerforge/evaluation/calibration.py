"""Calibration, pure numpy: does a confidence of 0.9 mean "right 9 times in 10"?

Everything here takes *probabilities*, so the same functions measure a model before and after temperature
scaling. Temperature scaling (fit ``T`` on validation logits, apply ``softmax(logits / T)``) belongs in this
module too; it only has to produce probabilities for these functions to consume. Fitting them on a model's
validation split (loading the model, writing ``routerforge.json``) is :mod:`routerforge.evaluation.calibrator`.

Binning follows ``sklearn.calibration.calibration_curve(strategy="uniform")`` exactly (equal-width bins on
[0, 1], ``np.searchsorted`` on the inner edges), so our per-bin accuracy/confidence agree with sklearn's. We
still bin ourselves because ECE needs the per-bin counts, which sklearn's function does not return.
"""

from __future__ import annotations

import numpy as np

from ..errors import RouterforgeError
from ..numerics import softmax


def _top_label(probs: np.ndarray, y_true) -> tuple[np.ndarray, np.ndarray]:
    """Confidence of the predicted class and whether that prediction was right.

    ``probs`` is ``(n, k)``; a 1-d array is read as P(class 1) of a binary task.
    """
    p = np.asarray(probs, dtype=float)
    if p.ndim == 1:
        p = np.stack([1.0 - p, p], axis=1)
    y = np.asarray(y_true)
    if p.ndim != 2 or len(p) != len(y) or len(y) == 0:
        raise RouterforgeError(f"calibration needs probs of shape (n, k) and n labels; got {p.shape} and {len(y)}")
    if p.min() < 0 or p.max() > 1:
        raise RouterforgeError("calibration needs probabilities in [0, 1] (apply softmax to logits first)")
    return p.max(axis=1), (p.argmax(axis=1) == y).astype(float)


def _bin_stats(conf: np.ndarray, correct: np.ndarray, n_bins: int):
    if n_bins < 1:
        raise RouterforgeError(f"n_bins must be >= 1, got {n_bins}")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    ids = np.searchsorted(edges[1:-1], conf)  # same rule as sklearn's calibration_curve
    count = np.bincount(ids, minlength=n_bins)
    conf_sum = np.bincount(ids, weights=conf, minlength=n_bins)
    correct_sum = np.bincount(ids, weights=correct, minlength=n_bins)
    return edges, count, conf_sum, correct_sum


def expected_calibration_error(probs: np.ndarray, y_true, n_bins: int = 15) -> float:
    """Top-label ECE with equal-width bins: sum over bins of (bin share) * |accuracy - mean confidence|.

    0 means perfectly calibrated; an over-confident model (0.99 confidence, 50% right) scores ~0.49.
    """
    conf, correct = _top_label(probs, y_true)
    _, _, conf_sum, correct_sum = _bin_stats(conf, correct, n_bins)
    return float(np.abs(correct_sum - conf_sum).sum() / len(conf))


def reliability_bins(probs: np.ndarray, y_true, n_bins: int = 15) -> list[dict]:
    """Per-bin data for a reliability diagram (and for the ECE above).

    One dict per bin, empty bins included: ``{"lo", "hi", "count", "confidence", "accuracy"}`` where
    ``confidence``/``accuracy`` are the bin means (``None`` for an empty bin).
    """
    conf, correct = _top_label(probs, y_true)
    edges, count, conf_sum, correct_sum = _bin_stats(conf, correct, n_bins)
    out = []
    for b in range(n_bins):
        c = int(count[b])
        out.append(
            {
                "lo": float(edges[b]),
                "hi": float(edges[b + 1]),
                "count": c,
                "confidence": float(conf_sum[b] / c) if c else None,
                "accuracy": float(correct_sum[b] / c) if c else None,
            }
        )
    return out


# -- temperature scaling and the jailbreak threshold -------------------------------------------------------

TARGET_FPR = 0.01


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The T that minimises the NLL of ``softmax(logits / T)`` on ``labels`` (Guo et al., 2017).

    One scalar, so accuracy never changes; a bounded search over log T in [0.05, 20].
    """
    from scipy.optimize import minimize_scalar
    from scipy.special import log_softmax

    logits, labels = np.asarray(logits, dtype=np.float64), np.asarray(labels)
    if len(labels) == 0:
        return 1.0

    def nll(log_t: float) -> float:
        return float(-log_softmax(logits / np.exp(log_t), axis=1)[np.arange(len(labels)), labels].mean())

    result = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(result.x))


# A temperature fitted on a handful of rows, or on rows the model already gets all right (the NLL then falls
# for ever as T -> 0), pushes every probability to 0 or 1: the demo once chose T = 0.07 on 15 rows. Below the
# floor, or with a perfectly separated validation set, T stays 1; a fit is clipped to the bounds.
MIN_CALIBRATION_ROWS = 100  # texts (a token head: texts too, not tokens, since a text's tokens move together)
TEMPERATURE_BOUNDS = (0.5, 5.0)


def choose_temperature(
    logits: np.ndarray,
    labels: np.ndarray,
    texts: int | None = None,
    min_rows: int = MIN_CALIBRATION_ROWS,
    bounds: tuple[float, float] = TEMPERATURE_BOUNDS,
) -> dict:
    """The temperature to serve with, and why: ``{"temperature", "status", "note"}``.

    ``status`` is ``"fitted"``, ``"clipped"`` (the fit fell outside ``bounds``) or ``"skipped"`` (T = 1: fewer
    than ``min_rows`` validation texts, or every validation unit already right, where T is not identifiable).
    ``texts`` is the number of validation texts behind the rows (a token head has many rows per text).

    >>> choose_temperature(np.array([[3.0, -3.0]] * 20), np.zeros(20, dtype=int))["status"]
    'skipped'
    """
    logits, labels = np.asarray(logits, dtype=np.float64), np.asarray(labels)
    n_texts = len(labels) if texts is None else texts
    if n_texts < min_rows:
        return {
            "temperature": 1.0,
            "status": "skipped",
            "note": f"{n_texts} validation texts, fewer than {min_rows}: too few to fit T, kept T = 1",
        }
    if len(labels) and (logits.argmax(axis=1) == labels).all():
        return {
            "temperature": 1.0,
            "status": "skipped",
            "note": "every validation row is already right, so T is not identifiable (NLL falls as T -> 0); kept T = 1",
        }
    fitted = fit_temperature(logits, labels)
    low, high = bounds
    if low <= fitted <= high:
        return {"temperature": fitted, "status": "fitted", "note": f"fitted on {n_texts} validation texts"}
    clipped = float(min(max(fitted, low), high))
    return {
        "temperature": clipped,
        "status": "clipped",
        "note": f"the fit gave T = {fitted:.3g}, outside [{low}, {high}]; clipped to {clipped:g}",
    }


def _nll(probs: np.ndarray, labels: np.ndarray) -> float:
    return float(-np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, None)).mean())


def calibration_summary(logits: np.ndarray, labels: np.ndarray, temperature: float) -> dict:
    """ECE and NLL before (T=1) and after temperature scaling, with the row count."""
    before, after = softmax(logits), softmax(logits, temperature)
    return {
        "n": int(len(labels)),
        "ece_before": expected_calibration_error(before, labels),
        "ece_after": expected_calibration_error(after, labels),
        "nll_before": _nll(before, labels),
        "nll_after": _nll(after, labels),
    }


def threshold_at_fpr(is_attack, p_attack, target_fpr: float = TARGET_FPR) -> dict:
    """The operating point with the most recall whose false-positive rate on this (validation) data is <=
    ``target_fpr``, with the counts it gives.

    The threshold sits halfway (in log-odds) between the highest-scoring negative it must exclude and the next
    score above it, not a hair above that negative, so a score that moves by rounding (an int8 export) does
    not flip the decision. With fewer than ``1 / target_fpr`` negatives the target cannot be resolved: the
    rule then admits no false positive at all, and ``resolvable`` says so.
    """
    y, p = np.asarray(is_attack, dtype=int), np.asarray(p_attack, dtype=float)
    negatives = np.sort(p[y == 0])[::-1]
    allowed = int(np.floor(target_fpr * len(negatives)))  # false positives the target permits
    if len(negatives) <= allowed:
        threshold = 0.5
    else:
        excluded = negatives[allowed]  # the highest negative that must stay below the threshold
        above = p[p > excluded]
        if excluded >= 1.0:  # a negative saturated at 1.0: only a threshold above 1 keeps it unflagged
            threshold = float(np.nextafter(1.0, np.inf))
        else:
            threshold = _midpoint(excluded, above.min() if above.size else 1.0)
    return {
        "threshold": threshold,
        "target_fpr": target_fpr,
        "resolvable": len(negatives) * target_fpr >= 1,
        **detection_counts(y, p, threshold),
    }


def _midpoint(low: float, high: float) -> float:
    """The point halfway between two probabilities in log-odds (they are often 1e-9 and 0.9999)."""
    from scipy.special import expit, logit

    middle = expit((logit(np.clip(low, 1e-12, 1 - 1e-12)) + logit(np.clip(high, 1e-12, 1 - 1e-12))) / 2)
    return float(min(max(middle, np.nextafter(low, np.inf)), high))


def detection_counts(y, p, threshold: float) -> dict:
    """TP/FP/FN/TN, FPR and recall when flagging at ``p >= threshold``."""
    y, flagged = np.asarray(y, dtype=int), np.asarray(p) >= threshold
    tp, fp = int((flagged & (y == 1)).sum()), int((flagged & (y == 0)).sum())
    fn, tn = int((~flagged & (y == 1)).sum()), int((~flagged & (y == 0)).sum())
    return {"tp": tp, "fp": fp, "fn": fn, "tn": tn, "fpr": fp / max(fp + tn, 1), "recall": tp / max(tp + fn, 1)}
