"""Calibration: does a confidence of 0.9 mean "right 9 times in 10"?

Everything here takes *probabilities*, so the same functions measure a model before and after temperature
scaling. Temperature scaling (fit ``T`` on validation logits, apply ``softmax(logits / T)``) belongs in this
module too; it only has to produce probabilities for these functions to consume.

Binning follows ``sklearn.calibration.calibration_curve(strategy="uniform")`` exactly (equal-width bins on
[0, 1], ``np.searchsorted`` on the inner edges), so our per-bin accuracy/confidence agree with sklearn's. We
still bin ourselves because ECE needs the per-bin counts, which sklearn's function does not return.
"""
from __future__ import annotations

import numpy as np

from routerforge.errors import RouterforgeError


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
        out.append({
            "lo": float(edges[b]),
            "hi": float(edges[b + 1]),
            "count": c,
            "confidence": float(conf_sum[b] / c) if c else None,
            "accuracy": float(correct_sum[b] / c) if c else None,
        })
    return out
