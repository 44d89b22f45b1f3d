"""Routers as arrays: each turns per-request estimates into one model index per request.

>>> table = fit_table(train.correct, train_cost, train.categories, labels)    # acc(m, c), cost(m, c)
>>> expected_acc, expected_cost = table.expect(probs)                          # probs: (requests, categories)
>>> choice = cost_aware(expected_acc, expected_cost, lam=200.0)                # argmax acc - lam x cost
>>> choice = within_epsilon(expected_acc, expected_cost, epsilon=0.02)         # cheapest near the best

A category router is the same computation with one-hot ``probs`` (the predicted or the true category); the
expected-accuracy router uses the classifier's whole probability vector: E[acc(m)] = sum_c p(c) acc(m, c).
Everything is numpy; nothing here knows about models or files.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class CategoryTable:
    """Accuracy and mean cost (USD per request) of each model on each category's training questions."""

    labels: list[str]
    models: list[str]
    accuracy: np.ndarray  # (categories, models)
    cost: np.ndarray  # (categories, models)
    support: np.ndarray  # (categories,) training questions per category

    def expect(self, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(requests, models)`` expected accuracy and expected cost under category probabilities ``probs``."""
        probs = np.asarray(probs, dtype=float)
        return probs @ self.accuracy, probs @ self.cost


def fit_table(
    correct: np.ndarray, cost: np.ndarray, categories, labels: list[str], models=(), prior: float = 1.0
) -> CategoryTable:
    """Per-category accuracy, shrunk towards the model's overall accuracy by ``prior`` pseudo-questions (a
    category with few training questions should not crown a model on luck), and per-category mean cost."""
    categories = np.asarray(categories)
    overall_acc, overall_cost = np.nanmean(correct, axis=0), cost.mean(axis=0)
    accuracy = np.empty((len(labels), correct.shape[1]))
    mean_cost = np.empty_like(accuracy)
    support = np.zeros(len(labels), dtype=int)
    for k, label in enumerate(labels):
        rows = categories == label
        support[k] = int(rows.sum())
        answered = (~np.isnan(correct[rows])).sum(axis=0)
        right = np.nansum(correct[rows], axis=0)
        accuracy[k] = (right + prior * overall_acc) / (answered + prior)
        mean_cost[k] = cost[rows].mean(axis=0) if support[k] else overall_cost
    return CategoryTable(list(labels), list(models), accuracy, mean_cost, support)


def one_hot(indices: np.ndarray, size: int) -> np.ndarray:
    """A category router is the expected-accuracy router with all probability on one category."""
    out = np.zeros((len(indices), size))
    out[np.arange(len(indices)), indices] = 1.0
    return out


def top_score(expected_acc: np.ndarray) -> np.ndarray:
    """The most accurate model in expectation (ties: the first listed)."""
    return np.asarray(expected_acc).argmax(axis=1)


def cost_aware(expected_acc: np.ndarray, expected_cost: np.ndarray, lam: float) -> np.ndarray:
    """argmax over models of E[acc] - ``lam`` x E[cost]; ``lam`` is accuracy given up per USD per request."""
    return (np.asarray(expected_acc) - lam * np.asarray(expected_cost)).argmax(axis=1)


def within_epsilon(expected_acc: np.ndarray, expected_cost: np.ndarray, epsilon: float) -> np.ndarray:
    """The cheapest model whose expected accuracy is within ``epsilon`` of the best one's."""
    expected_acc, expected_cost = np.asarray(expected_acc), np.asarray(expected_cost)
    near = expected_acc >= expected_acc.max(axis=1, keepdims=True) - epsilon
    return np.where(near, expected_cost, np.inf).argmin(axis=1)


def oracle(correct: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """Hindsight: the cheapest model that got it right; the cheapest model when none did."""
    right = np.nan_to_num(correct) > 0
    choice = np.where(right, cost, np.inf).argmin(axis=1)
    return np.where(right.any(axis=1), choice, cost.argmin(axis=1))


def random_choice(n: int, models: int, seed: int = 0) -> np.ndarray:
    """Each request to a model drawn uniformly (a fixed seed: the same draw every run)."""
    return np.random.default_rng(seed).integers(0, models, size=n)


def sweep(expected_acc: np.ndarray, expected_cost: np.ndarray, lambdas, epsilons) -> dict[str, list[tuple]]:
    """Every operating point of both cost-aware rules: ``{rule: [(parameter, choice), ...]}``."""
    return {
        "cost_aware": [(float(lam), cost_aware(expected_acc, expected_cost, lam)) for lam in lambdas],
        "epsilon": [(float(eps), within_epsilon(expected_acc, expected_cost, eps)) for eps in epsilons],
    }
