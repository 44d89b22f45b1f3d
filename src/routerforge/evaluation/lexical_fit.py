"""Fit a label head's lexical prior (:mod:`routerforge.runtime.lexical`): a TF-IDF logistic regression on the
training split (scikit-learn), and its weight in the mix chosen on validation.

The weight is the one with the best validation accuracy (ties: the smaller); it is kept only when it beats the
head alone by ``MIN_GAIN`` on validation, so a prior that does not help is not served. Test rows play no part.
"""

from __future__ import annotations

import numpy as np

from ..bundle import heads_of
from ..numerics import log_softmax
from ..runtime.lexical import LexicalModel

WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)
MIN_GAIN = 0.005  # validation accuracy the prior must add to be kept
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
    gold ids) and returns the record: accuracy per candidate weight, the chosen one, whether it is kept."""
    log_p, prior = log_softmax(logits), np.stack([model.log_probs(t) for t in texts])
    accuracy = {w: float(((log_p + w * prior).argmax(axis=1) == labels).mean()) for w in WEIGHTS}
    best = max(WEIGHTS, key=lambda w: (accuracy[w], -w))
    kept = accuracy[best] - accuracy[0.0] >= MIN_GAIN
    model.weight = best if kept else 0.0
    return {
        "weight": model.weight,
        "kept": kept,
        "val_accuracy": {str(w): a for w, a in accuracy.items()},
        "features": len(model.vocabulary),
        "fitted_on": "train",
        "weight_chosen_on": "val",
        "min_gain": MIN_GAIN,
    }
