"""The model selector: a fifth bundle head that predicts, per request, P(correct) for each pool model.

>>> record = train_selector("runs/local-data/bundle", outcomes="data/model_outcomes/mmlu_pro_outcomes.jsonl")
>>> Router.load("runs/local-data/bundle").classify("What is the derivative of x^2?").selector.probs

The head reads the same mean-pooled encoder vector as the category head, so it runs in the one encoder pass
(one extra ``hidden x models`` matrix product). It is fitted on the *frozen* encoder: the other heads, their
calibration, thresholds and metrics stay exactly as trained, and fitting takes minutes instead of retraining the
bundle. One L2-regularised logistic regression per pool model (scikit-learn) on the pooled vectors of the
category head's training questions, joined to the outcomes by ``question_id``; the regularisation strength is
chosen on the validation split by log-loss, and the standardisation is folded into the one linear layer the
bundle stores (``modeling.multitask.MultilabelHead``). Logistic regression is calibrated by construction; the
validation and test Brier scores and ECE are recorded to show it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..bundle import head_data, is_bundle, read_info, write_info
from ..errors import RouterforgeError
from ..routing.outcomes import DEFAULT_POOL, load_outcomes
from ..routing.splits import split_rows

HEAD = "selector"
C_GRID = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0)  # inverse L2 strength, chosen on validation log-loss


def pooled_features(router, texts: list[str], batch_size: int = 32, progress: bool = True) -> np.ndarray:
    """The mean-pooled encoder output of each text's first window: what a multi-label head reads at serving."""
    import torch

    from ..modeling.multitask import mean_pool

    model = router.backend.module.model
    windows, shapes = router.first_windows(texts)
    out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
    bar = tqdm(total=len(texts), desc="encoding questions", disable=not progress, unit="q")
    with torch.inference_mode():
        for chunk, ids, mask, shape_ids in router.batches(windows, batch_size, shapes):
            mask_t = torch.from_numpy(mask)
            shapes_t = None if shape_ids is None else torch.from_numpy(shape_ids)
            hidden = model.hidden(torch.from_numpy(ids), mask_t, shapes_t)
            out[chunk] = mean_pool(hidden, mask_t).float().numpy()
            bar.update(len(chunk))
    bar.close()
    return out


def _fit(x: np.ndarray, y: np.ndarray, c: float):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c, max_iter=3000).fit(x, y)


def _scores(y: np.ndarray, p: np.ndarray) -> dict:
    """Per-model quality of P(correct): ROC-AUC, Brier score, log-loss, ECE, and the base rate."""
    from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

    from ..evaluation.calibration import expected_calibration_error

    both = np.stack([1 - p, p], axis=1)
    return {
        "n": int(len(y)),
        "accuracy_of_model": float(y.mean()),
        "roc_auc": float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else None,
        "brier": float(brier_score_loss(y, p)),
        "log_loss": float(log_loss(y, p, labels=[0, 1])),
        "ece": float(expected_calibration_error(both, y.astype(int))),
    }


def fit_selector(
    features: dict[str, np.ndarray], correct: dict[str, np.ndarray], models: list[str], progress: bool = True
) -> dict:
    """``features``/``correct``: ``{split: array}`` for train, val (and test); one logistic regression per model
    with C chosen on validation log-loss. Returns the linear layer (``weight``, ``bias``), C per model, and the
    val/test scores per model."""
    from sklearn.metrics import log_loss

    mean, std = features["train"].mean(axis=0), features["train"].std(axis=0) + 1e-6
    scaled = {split: (x - mean) / std for split, x in features.items()}
    weight = np.zeros((len(models), mean.size), dtype=np.float32)
    bias = np.zeros(len(models), dtype=np.float32)
    chosen: dict[str, float] = {}
    scores: dict[str, dict] = {split: {} for split in scaled if split != "train"}
    for j, model in enumerate(tqdm(models, desc="fitting P(correct)", unit="model", disable=not progress)):
        known = {split: ~np.isnan(y[:, j]) for split, y in correct.items()}
        x_train, y_train = scaled["train"][known["train"]], correct["train"][known["train"], j].astype(int)
        x_val, y_val = scaled["val"][known["val"]], correct["val"][known["val"], j].astype(int)
        losses = {
            c: log_loss(y_val, _fit(x_train, y_train, c).predict_proba(x_val)[:, 1], labels=[0, 1]) for c in C_GRID
        }
        chosen[model] = min(losses, key=losses.__getitem__)
        fitted = _fit(x_train, y_train, chosen[model])
        coef = fitted.coef_[0] / std  # standardisation folded in: w.(x - mean)/std + b = (w/std).x + b'
        weight[j], bias[j] = coef, fitted.intercept_[0] - float(coef @ mean)
        for split in scores:
            x, y = scaled[split][known[split]], correct[split][known[split], j].astype(int)
            scores[split][model] = _scores(y, fitted.predict_proba(x)[:, 1])
    return {"weight": weight, "bias": bias, "C": chosen, "scores": scores}


def _choice_accuracy(correct: np.ndarray, p: np.ndarray) -> float:
    """How often the model the selector rates likeliest got the question right (rows every model answered)."""
    full = ~np.isnan(correct).any(axis=1)
    return float(correct[full][np.arange(int(full.sum())), p[full].argmax(axis=1)].mean())


def train_selector(
    bundle: str | Path,
    *,
    outcomes: str | Path,
    pool: list[str] | tuple[str, ...] = DEFAULT_POOL,
    reexport: bool = True,
    progress: bool = True,
) -> dict:
    """Add (or refit) the ``selector`` head of ``bundle`` in place from per-question ``outcomes`` of ``pool``;
    the bundle's exports lack the new head, so they are removed and, with ``reexport``, exported again
    (parity-checked). Returns the head's record (C per model, val/test scores per model)."""
    import torch
    from safetensors.torch import load_file, save_file

    from ..io import make_readable
    from ..modeling.multitask import HEADS_FILE
    from ..runtime.engine import Router

    path = Path(bundle)
    info = read_info(path)
    if not is_bundle(info):
        raise RouterforgeError(
            "the selector is a head of a multitask bundle", source=str(path), hint="train with --mode multitask"
        )
    pool = list(pool)
    if len(set(pool)) != len(pool) or not pool:
        raise RouterforgeError("the pool must list distinct models", hint=f"for example: {', '.join(DEFAULT_POOL)}")
    split = split_rows(path, ("train", "val", "test"))
    table = load_outcomes(outcomes).select(pool)
    base = {h: spec for h, spec in info["heads"].items() if h != HEAD}
    router = Router.load(path, "torch")  # the pooled vectors do not depend on the heads (a refit reads the same)
    features, correct = {}, {}
    for name in ("train", "val", "test"):
        ids, texts, _ = split[name]
        features[name] = pooled_features(router, texts, progress=progress)
        correct[name] = table.rows(table.index_of(ids)).correct
    fitted = fit_selector(features, correct, pool, progress)
    choice = {
        name: _choice_accuracy(correct[name], features[name] @ fitted["weight"].T + fitted["bias"])
        for name in ("val", "test")
    }

    tensors = {k: v for k, v in load_file(str(path / HEADS_FILE)).items() if not k.startswith(f"{HEAD}.")}
    tensors[f"{HEAD}.out.weight"] = torch.from_numpy(fitted["weight"])
    tensors[f"{HEAD}.out.bias"] = torch.from_numpy(fitted["bias"])
    staged = path / f".{HEADS_FILE}.tmp"
    save_file(tensors, str(staged))
    make_readable(staged)
    os.replace(staged, path / HEADS_FILE)

    from ..exporters.exporter import FILES

    formats = [fmt for fmt in (info.get("exports") or {}) if fmt in FILES]
    for fmt in FILES.values():  # exported graphs lack the new head: never serve one without it
        (path / fmt).unlink(missing_ok=True)
    record = {
        "outcomes": str(outcomes),
        "pool": pool,
        "fitted_on": "frozen encoder, mean-pooled; category training split joined by question_id",
        "rows": {name: int(len(split[name][0])) for name in ("train", "val", "test")},
        "C": fitted["C"],
        "choice_accuracy": choice,
    }
    info["heads"] = base | {HEAD: {"kind": "multilabel", "labels": pool, "label_names": pool, "crf": False}}
    info["data"] = (info.get("data") or {}) | {HEAD: {"manifest": head_data(info, "category")["manifest"], **record}}
    info["metrics"] = (info.get("metrics") or {}) | {HEAD: fitted["scores"]}
    info["exports"] = {}
    write_info(path, info)
    if reexport:
        from ..exporters import ParityError
        from ..exporters.exporter import export

        for fmt in formats:
            try:
                export(path, fmt)
            except ParityError:
                pass  # recorded in routerforge.json (refused), as `routerforge export` leaves it
    return record | {"scores": fitted["scores"], "reexported": formats}
