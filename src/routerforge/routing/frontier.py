"""Scoring routers: accuracy with bootstrap intervals, cost per 1,000 requests, the single models' Pareto hull,
APGR, the cost to reach 95% of the best single model, and regret against the oracle.

>>> point = score(correct, cost, choice)                 # {"accuracy", "ci95", "cost_per_1k", ...}
>>> hull = single_model_hull(singles)                    # [(cost, accuracy), ...] upper hull, cheapest first
>>> apgr(points, weak, strong)                           # area under PGR over normalised cost

APGR follows RouteLLM (Ong et al., 2024): PGR = (acc - acc_weak) / (acc_strong - acc_weak), averaged over the
cost axis from the weak (cheapest) to the strong (most accurate) single model. RouteLLM's x axis is the share
of calls to the strong model; with many models and real prices it is cost, normalised to [0, 1] between the two.
A router's curve is a step (the best point affordable at each budget, no mixing); the single models' curve is
their hull, which random mixing between neighbours reaches, so a router is compared with the strongest baseline.
"""

from __future__ import annotations

import numpy as np

BOOTSTRAP = 1000


def picked(values: np.ndarray, choice: np.ndarray) -> np.ndarray:
    """Each request's value for the model the router chose (one fancy index, no loop)."""
    return np.asarray(values)[np.arange(len(choice)), choice]


def score(
    correct: np.ndarray, cost: np.ndarray, choice: np.ndarray, *, resamples: int = BOOTSTRAP, seed: int = 0
) -> dict:
    """Accuracy [95% percentile bootstrap interval], USD per 1,000 requests and each model's share."""
    right = np.nan_to_num(picked(correct, choice))
    spent = picked(cost, choice)
    rows = np.random.default_rng(seed).integers(0, len(right), size=(resamples, len(right)))
    low, high = np.percentile(right[rows].mean(axis=1), [2.5, 97.5])
    shares = np.bincount(choice, minlength=correct.shape[1]) / len(choice)
    return {
        "accuracy": float(right.mean()),
        "ci95": [float(low), float(high)],
        "cost_per_1k": float(spent.mean() * 1000),
        "share": [float(s) for s in shares],
    }


def upper_hull(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The upper-left convex hull of (cost, accuracy) points: cheapest first, each next one dearer and better,
    with no point above a segment (mixing two hull points reaches anything on the segment between them)."""
    hull: list[tuple[float, float]] = []
    for c, a in sorted(set(points), key=lambda p: (p[0], -p[1])):
        if hull and a <= hull[-1][1]:
            continue  # dearer and no better
        while len(hull) >= 2:
            (c1, a1), (c2, a2) = hull[-2], hull[-1]
            if (a2 - a1) * (c - c1) <= (a - a1) * (c2 - c1):  # hull[-1] lies on or below the new segment
                hull.pop()
            else:
                break
        hull.append((c, a))
    return hull


def hull_accuracy(hull: list[tuple[float, float]], cost: float) -> float:
    """Accuracy the hull reaches at ``cost`` (interpolated; flat beyond its ends)."""
    costs, accs = zip(*hull)
    return float(np.interp(cost, costs, accs))


def frontier(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Pareto-efficient points (no other point is cheaper and at least as accurate), cheapest first."""
    out: list[tuple[float, float]] = []
    for c, a in sorted(points, key=lambda p: (p[0], -p[1])):
        if not out or a > out[-1][1]:
            out.append((c, a))
    return out


def apgr(points: list[tuple[float, float]], weak: tuple[float, float], strong: tuple[float, float], mix=False):
    """Average PGR over normalised cost in [0, 1] (weak -> strong). ``mix=False``: step curve of the best point
    affordable at each budget (a router; the weak model is always affordable); ``mix=True``: the upper hull of
    the points with the weak and strong models (random mixing)."""
    (cw, aw), (cs, as_) = weak, strong
    span, gap = cs - cw, as_ - aw
    if span <= 0 or gap <= 0:
        return float("nan")
    pts = [((c - cw) / span, (a - aw) / gap) for c, a in points]
    if mix:
        hull = upper_hull([*pts, (0.0, 0.0), (1.0, 1.0)])
        grid = np.linspace(0, 1, 2001)
        return float(np.trapezoid([hull_accuracy(hull, x) for x in grid], grid))
    area, best, last = 0.0, 0.0, 0.0
    for x, pgr in frontier([p for p in pts if p[0] <= 1] + [(0.0, 0.0)]):
        x = max(x, 0.0)
        area += best * (x - last)
        best, last = max(best, pgr), x
    return float(area + best * (1 - last))


def cost_to_reach(points: list[tuple[float, float]], target: float, mix: bool = False) -> float | None:
    """The lowest cost at which ``points`` reach accuracy ``target`` (``mix``: along their hull); None if never."""
    if mix:
        hull = upper_hull(points)
        for (c1, a1), (c2, a2) in zip(hull, hull[1:]):
            if a1 >= target:
                return c1
            if a2 >= target:
                return c1 + (target - a1) / (a2 - a1) * (c2 - c1)
        return hull[-1][0] if hull[-1][1] >= target else None
    costs = [c for c, a in points if a >= target]
    return min(costs) if costs else None


def widest_gain(points: list[tuple[float, float]], hull: list[tuple[float, float]]) -> dict:
    """Where the points rise furthest above the hull between its cheapest and its most accurate model."""
    lo, hi = hull[0][0], hull[-1][0]
    inside = [(c, a) for c, a in points if lo <= c <= hi]
    if not inside:
        return {"gain": None, "cost_per_1k": None, "accuracy": None}
    c, a = max(inside, key=lambda p: p[1] - hull_accuracy(hull, p[0]))
    return {"gain": a - hull_accuracy(hull, c), "cost_per_1k": c, "accuracy": a}


def gap_profile(
    points: list[tuple[float, float]], hull: list[tuple[float, float]], grid: int = 200, mix: bool = False
) -> dict:
    """The router's step frontier (its best point affordable at each budget; the hull's cheapest model is always
    affordable) minus the hull, on a log-spaced cost grid between the hull's ends: where it is above, and by how
    much at least and at most. ``mix``: the router may mix its own operating points at random too (its upper
    hull with the cheapest model), the same allowance the single models' hull gets."""
    lo, hi = hull[0][0], hull[-1][0]
    if hi <= lo:
        return {"min_gap": None, "max_gap": None, "share_above": None}
    steps = frontier([*points, hull[0]])
    own_hull = upper_hull([*points, hull[0]])
    costs = np.geomspace(lo, hi, grid)
    gaps = []
    for x in costs:
        if mix:
            best = hull_accuracy(own_hull, float(x))
        else:
            best = max(a for c, a in steps if c <= x * (1 + 1e-12))
        gaps.append(best - hull_accuracy(hull, float(x)))
    gaps_array = np.array(gaps)
    return {
        "min_gap": float(gaps_array.min()),
        "max_gap": float(gaps_array.max()),
        "share_above": float((gaps_array >= -1e-12).mean()),
    }
