"""Lexical priors: a word n-gram logistic regression beside a label head, mixed into its log-probabilities.

A fine-tuned 6-layer encoder and a TF-IDF logistic regression err on different questions: on the local-data
bundle's category head the mix raised validation accuracy 0.786 -> 0.814 (benchmarks/README.md). The
regression is fitted with scikit-learn on the training split and its weight is chosen on validation
(:mod:`routerforge.evaluation.lexical_fit`); this module only *reads* the fitted model, in numpy, because the
serving install has no scikit-learn (as :func:`~routerforge.runtime.engine.viterbi` reads pytorch-crf's
parameters without torch). ``tests/test_lexical.py`` holds it to scikit-learn's own ``predict_log_proba``.

A head's served logits become ``log_softmax(encoder logits) + weight * log P_lexical(text)``; the head's
temperature is fitted on that sum. Files in the model directory: ``lexical.json`` (per head: vocabulary,
n-gram range, weight) and ``lexical.safetensors`` (``<head>.idf``, ``<head>.coef``, ``<head>.intercept``).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np

from ..errors import RouterforgeError
from ..io import write_bytes, write_text
from ..numerics import log_softmax

LEXICAL_JSON, LEXICAL_ARRAYS = "lexical.json", "lexical.safetensors"
TOKEN_PATTERN = r"(?u)\b\w\w+\b"  # scikit-learn's default: words of two or more characters


class LexicalModel:
    """One head's fitted TF-IDF (sublinear tf, smooth idf, l2 norm) + multinomial logistic regression."""

    def __init__(
        self,
        vocabulary: list[str],
        ngram_range: tuple[int, int],
        idf: np.ndarray,
        coef: np.ndarray,
        intercept: np.ndarray,
        weight: float,
    ):
        self.vocabulary = list(vocabulary)
        self.index = {term: i for i, term in enumerate(self.vocabulary)}
        self.ngram_range = (int(ngram_range[0]), int(ngram_range[1]))
        self.idf, self.coef = idf.astype(np.float64), coef.astype(np.float64)
        self.intercept = intercept.astype(np.float64)
        self.weight = float(weight)
        self._words = re.compile(TOKEN_PATTERN).findall

    def features(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """The text's non-zero TF-IDF features: column indices and l2-normalised values."""
        words = self._words(text.lower())
        low, high = self.ngram_range
        counts = Counter(" ".join(words[i : i + n]) for n in range(low, high + 1) for i in range(len(words) - n + 1))
        known = [(self.index[t], c) for t, c in counts.items() if t in self.index]
        if not known:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        columns = np.array([k for k, _ in known], dtype=np.int64)
        values = (1.0 + np.log([c for _, c in known])) * self.idf[columns]
        return columns, values / np.linalg.norm(values)

    def log_probs(self, text: str) -> np.ndarray:
        """``log P(label | text)`` in the head's label order."""
        columns, values = self.features(text)
        scores = self.intercept + self.coef[:, columns] @ values
        if len(scores) == 1:  # a binary regression keeps one row of coefficients: the second label's score
            scores = np.array([0.0, scores[0]])
        return log_softmax(scores)

    def combine(self, logits: np.ndarray, text: str) -> np.ndarray:
        """The head's logits (one window, or several stacked) with this model's log-probabilities mixed in."""
        return log_softmax(logits) + self.weight * self.log_probs(text)


def load_lexical(path: Path, calibration: dict) -> dict[str, LexicalModel]:
    """``{head: LexicalModel}`` for the heads whose calibration record (``routerforge.json``, written last) keeps
    a prior. A kept prior whose files are missing or do not match the record (another weight or vocabulary
    size: an interrupted or partial copy) is refused, since its temperature was fitted with the prior mixed in."""
    kept = {head: r["lexical"] for head, r in calibration.items() if (r.get("lexical") or {}).get("kept")}
    if not kept:
        return {}
    from safetensors.numpy import load_file

    try:
        meta, arrays = json.loads((path / LEXICAL_JSON).read_text()), load_file(str(path / LEXICAL_ARRAYS))
    except (OSError, ValueError) as err:
        raise RouterforgeError(
            f"routerforge.json keeps a lexical prior for {', '.join(kept)} but its files cannot be read ({err})",
            source=str(path),
            hint=f"copy {LEXICAL_JSON} and {LEXICAL_ARRAYS} with the model, or run: routerforge calibrate {path}",
        ) from None
    models = {}
    for head, record in kept.items():
        spec = meta.get(head) or {}
        if spec.get("weight") != record["weight"] or len(spec.get("vocabulary", ())) != record["features"]:
            raise RouterforgeError(
                f"the {head} head's lexical prior in {LEXICAL_JSON} does not match routerforge.json",
                source=str(path),
                hint=f"run: routerforge calibrate {path}",
            )
        models[head] = LexicalModel(
            spec["vocabulary"],
            tuple(spec["ngram_range"]),
            arrays[f"{head}.idf"],
            arrays[f"{head}.coef"],
            arrays[f"{head}.intercept"],
            spec["weight"],
        )
    return models


def save_lexical(path: Path, models: dict[str, LexicalModel]) -> None:
    """Write ``models`` into a model directory (float32 arrays; each file atomically, readable like the rest);
    with none, remove an earlier fit's files."""
    if not models:
        for name in (LEXICAL_JSON, LEXICAL_ARRAYS):
            (path / name).unlink(missing_ok=True)
        return
    from safetensors.numpy import save

    arrays = {}  # C order: safetensors.numpy writes a Fortran-ordered array's memory as is (scikit-learn's coef_)
    for head, model in models.items():
        for name, value in (("idf", model.idf), ("coef", model.coef), ("intercept", model.intercept)):
            arrays[f"{head}.{name}"] = np.ascontiguousarray(value, dtype=np.float32)
    write_bytes(path / LEXICAL_ARRAYS, save(arrays))
    meta = {
        head: {"weight": m.weight, "ngram_range": list(m.ngram_range), "vocabulary": m.vocabulary}
        for head, m in models.items()
    }
    write_text(path / LEXICAL_JSON, json.dumps(meta, ensure_ascii=False))
