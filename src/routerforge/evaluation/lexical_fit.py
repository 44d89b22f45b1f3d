"""Fit a label head's lexical prior (:mod:`routerforge.runtime.lexical`): a TF-IDF logistic regression on the
training split (scikit-learn), and its weight in the mix chosen on validation.

The weight is the one with the best validation accuracy (ties: the smaller); the prior is kept only when that
weight's gain is more than chance on validation: of the rows where it changes right into wrong or wrong into
right, it fixes significantly more than it breaks (a one-sided sign test, p < ``ALPHA``). A fixed gain in
accuracy would keep priors that help by two rows on a small validation split. Test rows play no part.
"""

from __future__ import annotations

import numpy as np

from ..bundle import heads_of
from ..numerics import log_softmax
from ..runtime.lexical import LexicalModel

WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)
ALPHA = 0.05  # the sign test's level: a prior whose validation gain could be chance is not served
NGRAM_RANGE, MIN_DF, MAX_FEATURES, C = (1, 2), 2, 50_000, 10.0  # benchmarks/README.md: C 3-30 within 0.3 point


def lexical_heads(info: dict) -> list[str]:
    """The heads that get a prior: label heads (not jailbreak, whose guard a bag of words could be pushed
    against by appended text; not the PII token head or the model selector), unless ``hyperparams.lexical``
    is false."""
    if not (info.get("hyperparams") or {}).get("lexical", True):
        return []
    return [t for t, h in heads_of(info).items() if h["kind"] == "sequence" and t != "jailbreak"]


def fit_lexical(texts: list[str], labels: list[int], n_labels: int) -> LexicalModel | None:
    """The regression on ``texts`` (normalised as served) and label ids; None when the rows cannot support one
    (a label missing from them, or no word seen twice)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    if len(set(labels)) < n_labels:
        return None
    vectorizer = TfidfVectorizer(ngram_range=NGRAM_RANGE, min_df=MIN_DF, max_features=MAX_FEATURES, sublinear_tf=True)
    try:
        features = vectorizer.fit_transform(texts)
    except ValueError:  # "empty vocabulary": nothing occurs in two rows
        return None
    regression = LogisticRegression(C=C, max_iter=2000).fit(features, labels)
    return LexicalModel(
        vectorizer.get_feature_names_out().tolist(),
        NGRAM_RANGE,
        vectorizer.idf_,
        regression.coef_,
        regression.intercept_,
        weight=0.0,
    )


def choose_weight(model: LexicalModel, logits: np.ndarray, texts: list[str], labels: np.ndarray) -> dict:
    """Sets ``model.weight`` from validation (encoder logits of each row's first window, normalised texts,
    gold ids) and returns the record: accuracy per candidate weight, the chosen one, the rows it fixes and
    breaks, the sign test's p-value, whether it is kept."""
    from scipy.stats import binomtest

    log_p, prior = log_softmax(logits), np.stack([model.log_probs(t) for t in texts])
    right = {w: (log_p + w * prior).argmax(axis=1) == labels for w in WEIGHTS}
    best = max(WEIGHTS, key=lambda w: (int(right[w].sum()), -w))
    fixed, broken = int((right[best] & ~right[0.0]).sum()), int((right[0.0] & ~right[best]).sum())
    p_value = binomtest(fixed, fixed + broken, alternative="greater").pvalue if fixed > broken else 1.0
    kept = bool(p_value < ALPHA)
    model.weight = best if kept else 0.0
    return {
        "weight": model.weight,
        "kept": kept,
        "val_accuracy": {str(w): float(r.mean()) for w, r in right.items()},
        "rows_fixed": fixed,  # by the best weight, against the encoder alone
        "rows_broken": broken,
        "p_value": float(p_value),
        "alpha": ALPHA,
        "features": len(model.vocabulary),
        "fitted_on": "train",
        "weight_chosen_on": "val",
    }
