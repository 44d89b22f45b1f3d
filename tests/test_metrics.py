"""Evaluation library: metrics checked against hand computations, calibration, and report files."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import f1_score, log_loss

from routerforge.data.schema import Span
from routerforge.errors import RouterforgeError
from routerforge.evaluation.calibration import expected_calibration_error, reliability_bins
from routerforge.evaluation.metrics import (
    binary_detection_metrics,
    classification_metrics,
    latency_summary,
    span_metrics,
)
from routerforge.reports.eval_report import plot_confusion_matrix, plot_roc_pr, write_report


def _noisy(n=300, k=4, seed=1):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    p = np.where(rng.random(n) < 0.7, y, rng.integers(0, k, n))
    return y.tolist(), p.tolist()


# ------------------------------------------------------------------------------------- classification
def test_perfect_predictions_are_one_with_degenerate_interval():
    y = [0, 1, 2, 0, 1, 2, 2]
    m = classification_metrics(y, y, ["a", "b", "c"], n_boot=100)
    assert m["n"] == 7 and m["n_errors"] == 0
    for key in ("accuracy", "macro_f1", "macro_precision", "macro_recall", "weighted_f1"):
        assert m[key] == {"value": 1.0, "ci95": [1.0, 1.0]}


def test_known_confusion_case_matches_hand_computation():
    # class a: tp 2, fn 1 -> P 1, R 2/3, F1 0.8; class b: tp 2, fp 1 -> P 2/3, R 1, F1 0.8; class c: perfect
    m = classification_metrics([0, 0, 0, 1, 1, 2], [0, 0, 1, 1, 1, 2], ["a", "b", "c"], n_boot=0)
    assert m["n_errors"] == 1
    assert m["accuracy"]["value"] == pytest.approx(5 / 6)
    assert m["macro_f1"]["value"] == pytest.approx((0.8 + 0.8 + 1) / 3)
    assert m["macro_precision"]["value"] == pytest.approx((1 + 2 / 3 + 1) / 3)
    assert m["weighted_f1"]["value"] == pytest.approx((3 * 0.8 + 2 * 0.8 + 1) / 6)
    assert m["confusion_matrix"] == [[2, 1, 0], [0, 2, 0], [0, 0, 1]]
    rows = {r["label"]: r for r in m["per_class"]}
    assert rows["a"]["recall"] == pytest.approx(2 / 3) and rows["a"]["support"] == 3
    assert rows["b"]["precision"] == pytest.approx(2 / 3)
    assert m["accuracy"]["ci95"] is None


def test_labels_without_support_are_listed_and_excluded_from_macro():
    y_true, y_pred = [0, 0, 0, 1, 1, 2], [0, 0, 3, 1, 1, 2]  # "d" (3) has no test support, but is predicted once
    m = classification_metrics(y_true, y_pred, ["a", "b", "c", "d"], n_boot=0)
    assert m["labels_without_support"] == ["d"]
    assert m["macro_over"] == "labels with test support"
    assert [r["label"] for r in m["per_class"]] == ["a", "b", "c"]
    assert m["macro_f1"]["value"] == pytest.approx(f1_score(y_true, y_pred, labels=[0, 1, 2], average="macro"))
    assert m["macro_recall"]["value"] == pytest.approx((2 / 3 + 1 + 1) / 3)  # the wrong "d" still costs recall
    assert m["n_errors"] == 1
    assert len(m["confusion_matrix"]) == 4


def test_bootstrap_interval_contains_estimate_and_is_seeded():
    y, p = _noisy()
    labels = ["a", "b", "c", "d"]
    m1 = classification_metrics(y, p, labels, n_boot=200, seed=3)
    m2 = classification_metrics(y, p, labels, n_boot=200, seed=3)
    m3 = classification_metrics(y, p, labels, n_boot=200, seed=4)
    assert m1 == m2
    assert m1["macro_f1"]["ci95"] != m3["macro_f1"]["ci95"]
    for key in ("accuracy", "macro_f1", "weighted_f1", "macro_precision", "weighted_recall"):
        lo, hi = m1[key]["ci95"]
        assert lo <= m1[key]["value"] <= hi and lo < hi
    assert m1["macro_f1"]["value"] == pytest.approx(f1_score(y, p, average="macro"))


def test_probs_add_ece_and_nll():
    y = [0, 1, 1, 0]
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.7, 0.3]])
    m = classification_metrics(y, probs.argmax(1).tolist(), ["x", "y"], probs, n_boot=0)
    assert m["nll"] == pytest.approx(log_loss(y, probs))
    assert m["ece"] == pytest.approx(expected_calibration_error(probs, y))
    with pytest.raises(RouterforgeError):
        classification_metrics(y, y, ["x", "y"], probs[:, :1], n_boot=0)


def test_bad_classification_input_is_a_library_error():
    with pytest.raises(RouterforgeError):
        classification_metrics([0, 1], [0], ["a", "b"])
    with pytest.raises(RouterforgeError):
        classification_metrics([0, 2], [0, 1], ["a", "b"])


# ------------------------------------------------------------------------------------ binary detection
def _detection_case():
    # 100 negatives scored 0.00 .. 0.99; 10 positives: 5 at 0.995, 3 at 0.975, 2 at 0.5
    neg = np.arange(100) / 100
    pos = np.array([0.995] * 5 + [0.975] * 3 + [0.5] * 2)
    return [0] * 100 + [1] * 10, np.concatenate([neg, pos])


def test_recall_at_fpr_known_answer_and_counts():
    y, p = _detection_case()
    m = binary_detection_metrics(y, p, n_boot=50, threshold=0.5)
    at1, at5 = m["at_fpr"]
    # FPR <= 1% allows one false positive, but the next positives (0.975) bring two (0.98, 0.99)
    assert at1["recall"] == 0.5 and at1["threshold"] == pytest.approx(0.995)
    assert (at1["tp"], at1["fn"], at1["fp"], at1["tn"]) == (5, 5, 0, 100)
    # FPR <= 5%: threshold 0.975 gives recall 0.8 with two false positives; 0.5 would need 50
    assert at5["recall"] == 0.8 and at5["threshold"] == pytest.approx(0.975)
    assert (at5["tp"], at5["fn"], at5["fp"], at5["tn"]) == (8, 2, 2, 98)
    assert at5["n_pos"] == 10 and at5["n_neg"] == 100
    assert "note" not in at1 and "note" not in at5
    assert m["at_threshold"]["tp"] == 10 and m["at_threshold"]["fp"] == 50
    lo, hi = m["roc_auc"]["ci95"]
    assert lo <= m["roc_auc"]["value"] <= hi


def test_too_few_negatives_are_flagged():
    y = [0] * 50 + [1] * 5
    p = np.linspace(0, 1, 55)
    m = binary_detection_metrics(y, p, n_boot=0)
    note = m["at_fpr"][0]["note"]
    assert "50 negatives" in note and "100 negatives" in note
    assert "note" not in m["at_fpr"][1]  # 50 * 0.05 >= 1


def test_perfect_separation_and_single_class_error():
    m = binary_detection_metrics([0, 0, 0, 1, 1], np.array([0.1, 0.2, 0.3, 0.8, 0.9]), n_boot=100, seed=1)
    assert m["roc_auc"] == {"value": 1.0, "ci95": [1.0, 1.0]}
    assert m["pr_auc"]["value"] == 1.0
    assert m["at_fpr"][0]["recall"] == 1.0 and m["at_fpr"][0]["fp"] == 0
    assert m["bootstrap"]["skipped_one_class"] > 0  # 5 rows: some resamples hold one class only
    with pytest.raises(RouterforgeError):
        binary_detection_metrics([1, 1], np.array([0.2, 0.9]))


# ------------------------------------------------------------------------------------------------ spans
def test_span_exact_match_boundary_and_type_errors():
    gold = [[Span("PERSON", 0, 4)], [Span("PERSON", 0, 4)], [Span("PERSON", 0, 4)]]
    exact = span_metrics(gold[:1], [[Span("PERSON", 0, 4)]], n_boot=0)
    assert (exact["tp"], exact["fp"], exact["fn"]) == (1, 0, 0) and exact["micro_f1"]["value"] == 1.0

    off_by_one = span_metrics(gold[:1], [[Span("PERSON", 0, 5)]], n_boot=0)
    assert (off_by_one["tp"], off_by_one["fp"], off_by_one["fn"]) == (0, 1, 1)
    assert off_by_one["micro_f1"]["value"] == 0.0

    wrong_type = span_metrics(gold[:1], [[Span("EMAIL_ADDRESS", 0, 4)]], n_boot=0)
    assert (wrong_type["tp"], wrong_type["fp"], wrong_type["fn"]) == (0, 1, 1)

    mixed = span_metrics(gold, [[Span("PERSON", 0, 4)], [Span("PERSON", 1, 4)], []], n_boot=0)
    assert (mixed["tp"], mixed["fp"], mixed["fn"]) == (1, 1, 2)
    assert mixed["micro_precision"]["value"] == 0.5 and mixed["micro_recall"]["value"] == pytest.approx(1 / 3)
    assert mixed["micro_f1"]["value"] == pytest.approx(0.4)


def test_span_per_type_min_support_and_dict_spans():
    gold = [[Span("PERSON", 0, 4)] for _ in range(12)] + [[Span("EMAIL_ADDRESS", 5, 20)] for _ in range(3)]
    pred = [[Span("PERSON", 0, 4)] for _ in range(12)] + [
        [{"entity_type": "EMAIL_ADDRESS", "start": 5, "end": 20}],
        [{"entity_type": "GPE", "start": 0, "end": 3}],
        [],
    ]
    m = span_metrics(gold, pred, min_support=10, n_boot=0)
    assert [r["entity_type"] for r in m["per_type"]] == ["PERSON"]
    assert m["per_type"][0]["f1"] == 1.0 and m["per_type"][0]["support"] == 12
    below = {r["entity_type"]: r for r in m["types_below_min_support"]}
    assert below["EMAIL_ADDRESS"] == {"entity_type": "EMAIL_ADDRESS", "support": 3, "predicted": 1}
    assert below["GPE"]["support"] == 0 and below["GPE"]["predicted"] == 1
    assert (m["tp"], m["fp"], m["fn"]) == (13, 1, 2)


def test_span_bootstrap_is_seeded_and_contains_estimate():
    rng = np.random.default_rng(0)
    gold, pred = [], []
    for _ in range(80):
        g = [Span("PERSON", 10 * i, 10 * i + 4) for i in range(rng.integers(1, 4))]
        gold.append(g)
        pred.append([s if rng.random() < 0.8 else Span(s.entity_type, s.start, s.end + 1) for s in g])
    a = span_metrics(gold, pred, n_boot=200, seed=5)
    assert a == span_metrics(gold, pred, n_boot=200, seed=5)
    lo, hi = a["micro_f1"]["ci95"]
    assert lo <= a["micro_f1"]["value"] <= hi and lo < hi


def test_latency_summary():
    m = latency_summary([0.001, 0.002, 0.003])
    assert m["n"] == 3 and m["p50_ms"] == pytest.approx(2.0) and m["mean_ms"] == pytest.approx(2.0)
    assert 2.9 < m["p99_ms"] <= 3.0
    assert latency_summary([])["n"] == 0


# ---------------------------------------------------------------------------------------------- calibration
def test_ece_zero_when_calibrated_and_large_when_overconfident():
    # 10 rows at confidence 0.7 with 7 right, 10 rows at confidence 1.0 all right
    probs = np.array([[0.7, 0.3]] * 10 + [[1.0, 0.0]] * 10)
    y = [0] * 7 + [1] * 3 + [0] * 10
    assert expected_calibration_error(probs, y) == pytest.approx(0.0, abs=1e-12)
    over = np.array([[0.99, 0.01]] * 100)
    assert expected_calibration_error(over, [0] * 50 + [1] * 50) == pytest.approx(0.49)
    assert expected_calibration_error(np.full(100, 0.01), [0] * 50 + [1] * 50) == pytest.approx(0.49)  # 1-d = P(1)


def test_reliability_bins_agree_with_sklearn():
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(500, 3)) * 2
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    y = rng.integers(0, 3, 500)
    bins = reliability_bins(probs, y, n_bins=10)
    assert len(bins) == 10 and sum(b["count"] for b in bins) == 500
    conf, correct = probs.max(1), (probs.argmax(1) == y).astype(int)
    acc_sk, conf_sk = calibration_curve(correct, conf, n_bins=10)
    full = [b for b in bins if b["count"]]
    np.testing.assert_allclose([b["accuracy"] for b in full], acc_sk)
    np.testing.assert_allclose([b["confidence"] for b in full], conf_sk)
    ece = sum(b["count"] * abs(b["accuracy"] - b["confidence"]) for b in full) / 500
    assert expected_calibration_error(probs, y, n_bins=10) == pytest.approx(ece)


# --------------------------------------------------------------------------------------------------- report
def test_report_writes_json_markdown_and_pngs(tmp_path):
    labels = [f"category {i}" for i in range(14)]
    y, p = _noisy(n=400, k=12, seed=7)  # labels 12 and 13 have no support
    cls = classification_metrics(y, p, labels, n_boot=50)
    yb, pb = _detection_case()
    det = binary_detection_metrics(yb, pb, n_boot=50, threshold=0.9)
    spans = span_metrics([[Span("PERSON", 0, 4)]] * 12, [[Span("PERSON", 0, 4)]] * 11 + [[]], n_boot=50)
    plot_confusion_matrix(cls["confusion_matrix"], labels, tmp_path / "confusion_category.png")
    plot_roc_pr(yb, pb, tmp_path / "roc_pr_jailbreak.png")
    for png in tmp_path.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    metrics_in = {
        "model": "runs/x/models/multitask",
        "category": cls,
        "jailbreak": {"detection": det},
        "pii": spans,
        "latency": latency_summary([0.01, 0.02]),
        "odd": {"kind": "other", "x": np.float32(0.5), "n": np.int64(3), "bad": float("nan"), "arr": np.arange(2)},
    }
    write_report(tmp_path, metrics_in, title="Eval: multitask", extra_sections={"Data": "Rows: *400*\n"})

    text = (tmp_path / "metrics.json").read_text()
    data = json.loads(text)
    assert text == json.dumps(data, sort_keys=True, indent=2) + "\n"
    assert data["odd"] == {"kind": "other", "x": 0.5, "n": 3, "bad": None, "arr": [0, 1]}
    assert data["category"]["labels_without_support"] == ["category 12", "category 13"]

    md = (tmp_path / "report.md").read_text()
    assert md.startswith("# Eval: multitask")
    assert "## Data\n\nRows: *400*" in md
    assert "category 12, category 13" in md
    assert "| 0.010 | 0.500 |" in md  # recall at FPR 1% row
    targets = re.findall(r"\]\(([^)]+)\)", md)
    assert {"confusion_category.png", "roc_pr_jailbreak.png", "metrics.json"} <= set(targets)
    assert all((tmp_path / t).exists() for t in targets)
    assert not list(tmp_path.glob(".*tmp"))  # no temp files left behind


def test_vectorised_ranking_bootstrap_equals_sklearn_on_every_resample():
    """The AUC/AP bootstrap computes all resamples in one pass; each must equal sklearn on that resample."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    from routerforge.evaluation.metrics import _draw_counts, _ranking_resampled

    rng = np.random.default_rng(1)
    for n in (5, 40):
        y, p = rng.integers(0, 2, n), np.round(rng.random(n), 1)  # rounded: many tied scores
        w = _draw_counts(n, 40, seed=3)
        auc, ap = _ranking_resampled(y, p, w)
        reference = [
            (roc_auc_score(y[i], p[i]), average_precision_score(y[i], p[i]))
            for i in (np.repeat(np.arange(n), row) for row in w)
            if len(set(y[i])) == 2
        ]
        assert len(auc) == len(reference) > 0
        np.testing.assert_allclose(auc, [r[0] for r in reference], atol=1e-12)
        np.testing.assert_allclose(ap, [r[1] for r in reference], atol=1e-12)


def test_paired_difference_is_zero_for_the_same_answers_and_signed_otherwise():
    from routerforge.evaluation.metrics import paired_difference

    rng = np.random.default_rng(0)
    gold = rng.integers(0, 4, 400)
    good = np.where(rng.random(400) < 0.9, gold, (gold + 1) % 4)
    same = paired_difference(gold, good, good, labels=4, n_boot=200)
    assert same["value"] == 0 and same["ci95"] == [0.0, 0.0]
    worse = np.where(rng.random(400) < 0.2, (good + 1) % 4, good)
    d = paired_difference(gold, good, worse, labels=4, n_boot=200)
    assert d["value"] < 0 and d["ci95"][1] < 0  # clearly worse: the whole interval is below 0
    spans = [[Span("PERSON", 0, 4)], [Span("EMAIL_ADDRESS", 5, 20)]] * 50
    missed = [[], [Span("EMAIL_ADDRESS", 5, 20)]] * 50
    d = paired_difference(spans, spans, missed, n_boot=200)
    assert d["value"] == pytest.approx(2 / 3 - 1) and d["ci95"][1] < 0


def test_span_overlap_matching_and_f2():
    gold = [[Span("PERSON", 0, 10), Span("EMAIL", 12, 30)]]
    pred = [[Span("PERSON", 0, 4), Span("EMAIL", 12, 30), Span("EMAIL", 40, 44), Span("PERSON", 2, 8)]]
    exact = span_metrics(gold, pred, n_boot=0, min_support=1)
    overlap = span_metrics(gold, pred, n_boot=0, min_support=1, matching="overlap")
    assert (exact["tp"], exact["fp"], exact["fn"]) == (1, 3, 1)
    assert (overlap["tp"], overlap["fp"], overlap["fn"]) == (2, 2, 0)  # one to one: the second PERSON is a FP
    assert exact["micro_f2"]["value"] == pytest.approx(5 / (5 + 4 + 3))
    assert overlap["micro_f2"]["value"] == pytest.approx(10 / (10 + 0 + 2))
    with pytest.raises(RouterforgeError, match="unknown span matching"):
        span_metrics(gold, pred, matching="fuzzy")
