"""Calibrate a model: fit each head's temperature and the jailbreak threshold on validation, through the
serving path, and record them (with validation and test scores) in ``routerforge.json``.

>>> from routerforge.evaluation.calibrator import calibrate
>>> calibrate("models/jailbreak", target_fpr=0.01)["thresholds"]

The statistics themselves (temperature fit, ECE, the threshold rule) are pure functions in
:mod:`routerforge.evaluation.calibration`.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ..bundle import heads_of, read_info, with_metrics, write_info
from ..data.spans import bio_labels
from ..errors import RouterforgeError
from ..runtime.lexical import save_lexical
from .calibration import TARGET_FPR, calibration_summary, choose_temperature, detection_counts, threshold_at_fpr
from .lexical_fit import choose_weight, fit_lexical, lexical_heads


def _head_logits_and_labels(router, task: str, examples) -> tuple[np.ndarray, np.ndarray]:
    """Validation logits of one head (first window of each text) and the gold label ids they predict."""
    texts = [e.text for e in examples]
    logits = router.window_logits(texts)[task]
    names = router.heads[task]["label_names"]
    label2id = {n: i for i, n in enumerate(names)}
    if router.heads[task]["kind"] == "token":
        rows, labels = [], []
        for row, offsets, example in zip(logits, router.first_window_offsets(texts), examples):
            tags = np.asarray(bio_labels(offsets, example.spans, label2id))
            keep = tags >= 0
            rows.append(row[keep])
            labels.append(tags[keep])
        return np.concatenate(rows), np.concatenate(labels)
    return np.stack(router.with_prior(task, logits, texts)), np.array([label2id[e.label] for e in examples])


def fit_lexical_prior(router, task: str, train, val, logits: np.ndarray, labels: np.ndarray) -> dict:
    """Fit ``task``'s lexical prior on ``train`` and its weight on ``val`` (the encoder's ``logits`` and gold
    ``labels`` there; :mod:`.lexical_fit`); set it on ``router`` when kept. Returns the record for
    ``routerforge.json``."""
    names = router.heads[task]["label_names"]
    label2id = {n: i for i, n in enumerate(names)}
    model = fit_lexical([router.normalise(e.text).text for e in train], [label2id[e.label] for e in train], len(names))
    if model is None:
        return {"kept": False, "note": "the training rows cannot support one (a label missing, or no repeated word)"}
    record = choose_weight(model, logits, [router.normalise(e.text).text for e in val], labels)
    if record["kept"]:
        router.lexical[task] = model
    return record


def calibrated_heads(info: dict) -> list[str]:
    """The heads a temperature is fitted for: all but the model selector (its logistic regressions are fitted
    for calibration already, and its gold answers are outcomes, not labels in a manifest)."""
    return [task for task, head in heads_of(info).items() if head["kind"] != "multilabel"]


# Candidate minimum span scores for the PII head (``pii_min_score``): model spans below it are dropped.
MIN_SCORE_GRID = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)


def choose_pii_min_score(router, val) -> dict:
    """The minimum span score with the best exact-span F1 on validation (ties: the lowest), with the router's
    recognizers on; one model pass serves every candidate. Sets it on ``router``."""
    from ..data.schema import Span
    from .metrics import span_metrics

    recognizers, router.recognizers = router.recognizers, None
    try:
        raw = [s.pii for s in router.classify_batch([e.text for e in val])]
    finally:
        router.recognizers = recognizers
    gold = [list(e.spans or ()) for e in val]
    scores = {}
    for floor in MIN_SCORE_GRID:
        recognizers.min_score = floor
        predicted = [
            [Span(p.entity_type, p.start, p.end) for p in recognizers.apply(e.text, spans, router.normalise(e.text))]
            for e, spans in zip(val, raw)
        ]
        scores[floor] = span_metrics(gold, predicted, n_boot=0)["micro_f1"]["value"]
    best = max(MIN_SCORE_GRID, key=lambda f: (scores[f], -f))
    recognizers.min_score = best
    return {"chosen": best, "val_f1": {str(k): v for k, v in scores.items()}, "fitted_on": "val"}


def calibrate_router(router, splits: dict[str, dict[str, list]], target_fpr: float = TARGET_FPR) -> dict:
    """Fit the lexical prior of each head :func:`~.lexical_fit.lexical_heads` names whose split has ``train``
    rows (:func:`fit_lexical_prior`), each head's temperature on its validation split (on the logits as served,
    the prior mixed in; T = 1 when that split is too small or already all right:
    :func:`~.calibration.choose_temperature`), the jailbreak threshold at ``target_fpr`` and the PII head's
    minimum span score; sets them on ``router`` and returns ``{"calibration": ..., "thresholds": ...,
    "pii_min_score": ...}`` for ``routerforge.json`` (the priors themselves: ``router.lexical``, saved by the
    caller).

    ``splits``: ``{task: {"val": examples, "test": examples[, "train": examples]}}``. Test rows are only
    *reported* (ECE and the counts at the chosen threshold); nothing is chosen on them.
    """
    calibration, thresholds = {}, {}
    lexical = lexical_heads(router.info)
    for task in splits:
        val, test = splits[task]["val"], splits[task].get("test") or []
        router.lexical.pop(task, None)  # refitted below, or dropped
        logits, labels = _head_logits_and_labels(router, task, val)
        prior = None
        if task in lexical and splits[task].get("train"):
            prior = fit_lexical_prior(router, task, splits[task]["train"], val, logits, labels)
            logits = np.stack(router.with_prior(task, list(logits), [e.text for e in val]))
        choice = choose_temperature(logits, labels, texts=len(val))
        temperature = choice["temperature"]
        router.temperature[task] = temperature
        record = {
            "temperature": temperature,
            "temperature_status": choice["status"],  # fitted | clipped | skipped (T = 1), said in the report
            "temperature_note": choice["note"],
            "fitted_on": "val",
            "unit": "token" if router.heads[task]["kind"] == "token" else "text",
            "val": calibration_summary(logits, labels, temperature),
        }
        if prior is not None:
            record["lexical"] = prior
        if test:
            record["test"] = calibration_summary(*_head_logits_and_labels(router, task, test), temperature)
        calibration[task] = record
    if "jailbreak" in router.heads and "jailbreak" in router.heads["jailbreak"]["label_names"]:

        def scores(examples):
            signals = router.classify_batch([e.text for e in examples])
            return [int(e.label == "jailbreak") for e in examples], [s.jailbreak.p_jailbreak for s in signals]

        is_attack, p_attack = scores(splits["jailbreak"]["val"])
        choice = threshold_at_fpr(is_attack, p_attack, target_fpr)
        router.threshold = thresholds["jailbreak"] = choice["threshold"]
        calibration["jailbreak"]["threshold"] = {k: v for k, v in choice.items() if k != "threshold"}
        if splits["jailbreak"].get("test"):
            is_attack, p_attack = scores(splits["jailbreak"]["test"])
            calibration["jailbreak"]["threshold_on_test"] = detection_counts(is_attack, p_attack, choice["threshold"])
    out = {"calibration": calibration, "thresholds": thresholds}
    if "pii" in splits and router.recognizers is not None and splits["pii"]["val"]:
        calibration["pii"]["min_score"] = choose_pii_min_score(router, splits["pii"]["val"])
        out["pii_min_score"] = calibration["pii"]["min_score"]["chosen"]
    return out


def calibrate_and_score(
    model_dir,
    info: dict,
    splits: dict[str, dict[str, list]],
    target_fpr: float = TARGET_FPR,
    allow_pickle: bool = False,
) -> dict:
    """Fit lexical priors (on ``train`` where a split has it), temperatures and the jailbreak threshold on
    validation, save the priors into ``model_dir``, then score validation and test through the serving path
    (torch backend). ``splits``: as :func:`calibrate_router`. Updates ``info`` (calibration, thresholds,
    metrics) and returns it; a failure here is reported and the trained model kept."""
    from ..runtime.engine import Router
    from .evaluator import evaluate_examples

    try:
        router = Router.load(model_dir, "torch", info=info, allow_pickle=allow_pickle)
        info |= calibrate_router(router, splits, target_fpr)
        save_lexical(Path(model_dir), router.lexical)  # the records in info say which; a Router checks both agree
        scores = {
            t: {split: evaluate_examples(router, t, rows[split]) for split in ("val", "test")}
            for t, rows in splits.items()
        }
        info = with_metrics(info, scores)
    except Exception as err:  # noqa: BLE001 - the trained model matters more than its scores
        warnings.warn(f"scoring the trained model failed ({err!r}); run 'routerforge eval' on it", stacklevel=2)
        info["metrics"] = {"error": repr(err)}
    return info


def calibrate(model_dir, target_fpr: float = TARGET_FPR, *, allow_pickle: bool = False) -> dict:
    """Refit the lexical priors (on the training split), temperatures and the jailbreak threshold of a saved
    model (or bundle) on its own validation split(s) (re-read and hash-checked from the manifests), rescore
    validation and test with them, and store all of it in its ``routerforge.json``. Returns the calibration
    and thresholds."""
    from .evaluator import head_splits

    if not 0 < target_fpr < 1:
        raise RouterforgeError(f"target FPR must be in (0, 1), got {target_fpr}")
    info = read_info(model_dir)
    splits = head_splits(info, calibrated_heads(info), ("val", "test"))
    for task, rows in head_splits(info, lexical_heads(info), ("train",)).items():
        splits[task] |= rows
    info = calibrate_and_score(Path(model_dir), info, splits, target_fpr, allow_pickle=allow_pickle)
    if "error" in info["metrics"]:
        raise RouterforgeError(f"calibration failed: {info['metrics']['error']}", source=str(model_dir))
    write_info(model_dir, info)
    return {k: info[k] for k in ("calibration", "thresholds", "pii_min_score") if k in info}
