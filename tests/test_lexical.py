"""Lexical priors: the numpy reader matches scikit-learn, survives a save, is kept only when validation says so,
and is what a reloaded model serves."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from conftest import make_tiny_bundle
from routerforge.data.schema import Example
from routerforge.errors import RouterforgeError
from routerforge.evaluation import lexical_fit
from routerforge.evaluation.calibrator import calibrate_and_score
from routerforge.evaluation.lexical_fit import choose_weight, fit_lexical, lexical_heads
from routerforge.runtime.engine import Router
from routerforge.runtime.lexical import LEXICAL_ARRAYS, LEXICAL_JSON, load_lexical, save_lexical

TOPICS = {
    "math": ["integral", "derivative", "matrix", "prime number", "equation"],
    "law": ["court", "statute", "plaintiff", "contract law", "tort"],
    "biology": ["cell", "enzyme", "protein", "gene expression", "mitosis"],
}
FILLER = ["what", "is", "the", "a", "of", "explain", "why", "does", "how", "Ünïcode", "x2", "é"]


def rows(n: int, seed: int) -> list[Example]:
    """Texts whose label is said by one topic word among filler words."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        label = rng.choice(sorted(TOPICS))
        words = rng.sample(FILLER, 5) + [rng.choice(TOPICS[label])]
        rng.shuffle(words)
        out.append(Example(text=" ".join(words), label=label))
    return out


def sklearn_log_probs(texts, labels, queries):
    """The same fit with scikit-learn's own pipeline: what the numpy reader must reproduce."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    pipe = make_pipeline(
        TfidfVectorizer(
            ngram_range=lexical_fit.NGRAM_RANGE,
            min_df=lexical_fit.MIN_DF,
            max_features=lexical_fit.MAX_FEATURES,
            sublinear_tf=True,
        ),
        LogisticRegression(C=lexical_fit.C, max_iter=2000),
    )
    return pipe.fit(texts, labels).predict_log_proba(queries)


QUERIES = [
    "explain the integral of a matrix integral",  # a repeated word: sublinear tf
    "CONTRACT LAW and the Court",  # case folded, a bigram
    "nothing known here",  # no feature: the intercept alone
    "",
    "Ünïcode gene expression, gene expression!",
]


@pytest.mark.parametrize("n_labels", [2, 3])
def test_the_numpy_reader_gives_scikit_learns_probabilities(n_labels, tmp_path):
    names = sorted(TOPICS)[:n_labels]
    train = [e for e in rows(300, 0) if e.label in names]
    texts, labels = [e.text for e in train], [names.index(e.label) for e in train]
    model = fit_lexical(texts, labels, n_labels)
    assert model is not None
    expected = sklearn_log_probs(texts, labels, QUERIES)
    got = np.stack([model.log_probs(q) for q in QUERIES])
    np.testing.assert_allclose(got, expected, atol=1e-9)
    model.weight = 0.5
    save_lexical(tmp_path, {"topic": model})  # float32 on disk; scikit-learn's coef_ is Fortran-ordered
    record = {"kept": True, "weight": 0.5, "features": len(model.vocabulary)}
    loaded = load_lexical(tmp_path, {"topic": {"lexical": record}})["topic"]
    assert loaded.weight == 0.5 and loaded.vocabulary == model.vocabulary
    np.testing.assert_allclose(np.stack([loaded.log_probs(q) for q in QUERIES]), expected, atol=1e-4)


def test_rows_that_cannot_support_a_prior_give_none():
    assert fit_lexical(["a b", "c d"], [0, 1], 3) is None  # a label missing
    assert fit_lexical(["alpha beta", "gamma delta"], [0, 1], 2) is None  # no word in two rows


def test_the_weight_is_kept_only_when_it_adds_validation_accuracy():
    train, val = rows(300, 0), rows(60, 1)
    names = sorted(TOPICS)
    model = fit_lexical([e.text for e in train], [names.index(e.label) for e in train], 3)
    gold = np.array([names.index(e.label) for e in val])
    blind = np.zeros((len(val), 3))  # an encoder that knows nothing: the prior decides
    record = choose_weight(model, blind, [e.text for e in val], gold)
    assert record["kept"] and model.weight > 0 and record["val_accuracy"][str(model.weight)] == 1.0
    assert record["rows_fixed"] > 30 and record["rows_broken"] == 0 and record["p_value"] < 1e-9
    perfect = np.eye(3)[gold] * 20  # an encoder that is always right: nothing to add
    record = choose_weight(model, perfect, [e.text for e in val], gold)
    assert not record["kept"] and model.weight == 0.0 and record["rows_fixed"] == 0
    # two more right rows out of 60 could be chance: an encoder right but for 3 rows the prior fixes 2 of
    almost = perfect.copy()
    wrong = np.flatnonzero(np.arange(len(gold)) % 20 == 0)[:3]
    almost[wrong] = np.roll(almost[wrong], 1, axis=1) * 0.05  # barely wrong: a prior can tip them
    record = choose_weight(model, almost, [e.text for e in val], gold)
    assert record["rows_fixed"] - record["rows_broken"] in (1, 2, 3) and not record["kept"], record


def test_lexical_heads_are_the_label_heads_but_jailbreak(tiny_bundle):
    info = json.loads((tiny_bundle / "routerforge.json").read_text())
    assert lexical_heads(info) == ["category", "intent"]
    assert lexical_heads(info | {"hyperparams": {"lexical": False}}) == []


def test_calibration_fits_saves_and_serves_the_prior_and_drops_it_when_refitted_without(tiny_bert, tmp_path):
    names = sorted(TOPICS)
    bundle = make_tiny_bundle(tmp_path / "b", tiny_bert, {"topic": ("sequence", names, names)})
    info = json.loads((bundle / "routerforge.json").read_text())
    splits = {"topic": {"train": rows(300, 0), "val": rows(60, 1), "test": rows(60, 2)}}
    info = calibrate_and_score(bundle, info, splits)
    record = info["calibration"]["topic"]["lexical"]
    assert record["kept"] and record["fitted_on"] == "train" and record["weight_chosen_on"] == "val"
    assert (
        info["metrics"]["topic"]["test"]["classification"]["accuracy"]["value"] == 1.0
    )  # a random encoder alone: ~1/3

    served = Router.load(bundle, "torch", info=info)
    assert set(served.lexical) == {"topic"}
    assert [served.classify(e.text).extra["topic"].label for e in splits["topic"]["test"]] == [
        e.label for e in splits["topic"]["test"]
    ]
    mode = (bundle / "routerforge.json").stat().st_mode
    assert (bundle / LEXICAL_ARRAYS).stat().st_mode == (bundle / LEXICAL_JSON).stat().st_mode == mode

    # routerforge.json decides: a kept prior without its files (a partial copy) is refused, not served without it
    vocabulary = (bundle / LEXICAL_JSON).read_text()
    (bundle / LEXICAL_JSON).unlink()
    with pytest.raises(RouterforgeError, match="lexical prior"):
        Router.load(bundle, "torch", info=info)
    (bundle / LEXICAL_JSON).write_text(vocabulary)

    # the model's own setting decides which heads get one, whatever rows the caller passes
    info["hyperparams"] = {"lexical": False}
    info = calibrate_and_score(bundle, info, splits)
    assert "lexical" not in info["calibration"]["topic"]
    assert not (bundle / LEXICAL_JSON).exists() and not (bundle / LEXICAL_ARRAYS).exists()
    assert Router.load(bundle, "torch", info=info).lexical == {}


def test_the_run_report_says_what_calibration_decided_about_the_prior():
    from routerforge.reports.run_report import lexical_sentence

    accuracy = {str(w): 0.8 for w in lexical_fit.WEIGHTS} | {"0.0": 0.78, "1.5": 0.81}
    kept = {"kept": True, "weight": 1.5, "val_accuracy": accuracy, "features": 46987}
    kept |= {"rows_fixed": 40, "rows_broken": 12, "p_value": 0.0001, "alpha": 0.05}
    assert lexical_sentence(kept) == (
        "Lexical prior (word n-grams fitted on train, 46,987 features): weight 1.500, chosen on validation, "
        "where accuracy went 0.780 -> 0.810 (40 rows fixed, 12 broken, p = 0.0001)."
    )
    dropped = kept | {"kept": False, "weight": 0.0, "val_accuracy": accuracy | {"1.5": 0.782}, "p_value": 0.3}
    assert "not kept" in lexical_sentence(dropped) and "0.800 against 0.780" in lexical_sentence(dropped)
    assert "p = 0.300; it must be below 0.050" in lexical_sentence(dropped)
    assert lexical_sentence({"kept": False, "note": "a label missing"}) == "Lexical prior: none (a label missing)."
