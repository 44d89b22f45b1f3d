"""Per-question outcomes of a pool of LLMs, their list prices, and the cost of each answer.

>>> from routerforge.routing.outcomes import load_outcomes, load_prices, answer_costs
>>> outcomes = load_outcomes("data/model_outcomes/mmlu_pro_outcomes.jsonl").select(DEFAULT_POOL)
>>> prices = load_prices("configs/model-prices.yaml")
>>> cost = answer_costs(outcomes, prompt_chars, prices)      # (questions, models) USD per answer

The outcomes JSONL (docs/routing.md) holds one row per question: ``{"question_id", "category", "correct":
{model: 0|1}, "output_chars": {model: n}}``. Sources give no token counts, so tokens are estimated from
characters (``chars_per_token``) plus a fixed prompt overhead (the few-shot examples every request carries).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ..errors import RouterforgeError

#: The issue's default pool, spelled as in the MMLU-Pro outcomes file (cheapest to most accurate, roughly).
DEFAULT_POOL = (
    "Meta-Llama-3_1-8B-Instruct",
    "Mixtral-8x7B-Instruct-v0.1",
    "Meta-Llama-3_1-70B-Instruct",
    "gemini-1.5-flash-002",
    "gemini-1.5-pro-002",
    "gpt-4o-2024-05-13",
)


@dataclass
class Outcomes:
    """``correct`` and ``output_chars`` as ``(questions, models)`` arrays; NaN where a model has no answer."""

    question_ids: np.ndarray
    categories: np.ndarray
    models: list[str]
    correct: np.ndarray
    output_chars: np.ndarray

    def __len__(self) -> int:
        return len(self.question_ids)

    def select(self, models: list[str] | tuple[str, ...]) -> Outcomes:
        """These models only, in this order; a clear error for a model the file does not have."""
        missing = [m for m in models if m not in self.models]
        if missing:
            raise RouterforgeError(
                f"models {missing} are not in the outcomes",
                hint=f"choose from: {', '.join(self.models)}",
            )
        cols = [self.models.index(m) for m in models]
        return Outcomes(
            self.question_ids, self.categories, list(models), self.correct[:, cols], self.output_chars[:, cols]
        )

    def rows(self, index: np.ndarray) -> Outcomes:
        """These questions only (a split's rows), models unchanged."""
        return Outcomes(
            self.question_ids[index], self.categories[index], self.models, self.correct[index], self.output_chars[index]
        )

    def index_of(self, question_ids) -> np.ndarray:
        """Row positions of ``question_ids``; an error naming the first id that has no outcome."""
        position = {int(q): i for i, q in enumerate(self.question_ids)}
        missing = [q for q in question_ids if int(q) not in position]
        if missing:
            raise RouterforgeError(
                f"{len(missing)} question ids have no outcome (first: {missing[0]})",
                hint="the outcomes file must cover the evaluated questions",
            )
        return np.array([position[int(q)] for q in question_ids], dtype=int)


def load_outcomes(path: str | Path) -> Outcomes:
    """Read an outcomes JSONL; every model seen in any row becomes a column (NaN where a row lacks it)."""
    path = Path(path)
    if not path.is_file():
        raise RouterforgeError("outcomes file not found", source=str(path), hint="see docs/routing.md for the format")
    rows = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                rows.append(
                    (
                        int(row["question_id"]),
                        str(row.get("category", "")),
                        row["correct"],
                        row.get("output_chars") or {},
                    )
                )
            except (ValueError, KeyError, TypeError) as err:
                raise RouterforgeError(
                    f"not an outcome row ({type(err).__name__}: {err})",
                    source=str(path),
                    line=number,
                    hint='each line: {"question_id": int, "correct": {model: 0 or 1}, ...}; see docs/routing.md',
                ) from None
    if not rows:
        raise RouterforgeError("outcomes file has no rows", source=str(path))
    models = sorted({m for _, _, correct, _ in rows for m in correct})
    column = {m: j for j, m in enumerate(models)}
    correct = np.full((len(rows), len(models)), np.nan)
    chars = np.full((len(rows), len(models)), np.nan)
    for i, (_, _, right, lengths) in enumerate(rows):
        for model, value in right.items():
            correct[i, column[model]] = float(value)
        for model, value in lengths.items():
            if model in column:
                chars[i, column[model]] = float(value)
    return Outcomes(
        np.array([r[0] for r in rows]), np.array([r[1] for r in rows], dtype=object), models, correct, chars
    )


class ModelPrice(BaseModel):
    """List price of one model, USD per million tokens, with where and when it was read."""

    model_config = ConfigDict(extra="forbid")
    input: float = Field(ge=0, description="USD per million input tokens")
    output: float = Field(ge=0, description="USD per million output tokens")
    source: str = Field(min_length=1, description="where the price was read (provider and page)")
    date: str = Field(min_length=1, description="when the price applied (YYYY-MM)")


class PriceTable(BaseModel):
    """``configs/model-prices.yaml``: per-model prices and the token estimate settings."""

    model_config = ConfigDict(extra="forbid")
    chars_per_token: float = Field(4.0, gt=0, description="characters per token for the estimate")
    prompt_overhead_tokens: float = Field(
        0, ge=0, description="tokens every request carries besides the question (system prompt, few-shot examples)"
    )
    models: dict[str, ModelPrice] = Field(min_length=1)

    def of(self, models: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """``(input, output)`` USD per million tokens for ``models``; an error naming any unpriced model."""
        missing = [m for m in models if m not in self.models]
        if missing:
            raise RouterforgeError(
                f"no price for {missing}", hint="add them to the price table (configs/model-prices.yaml)"
            )
        return (
            np.array([self.models[m].input for m in models]),
            np.array([self.models[m].output for m in models]),
        )


def load_prices(path: str | Path) -> PriceTable:
    """The price table, validated; errors name the file, the line and the field."""
    from ..io import load_yaml

    return load_yaml(path, PriceTable, what="price table", hint="see configs/model-prices.yaml and docs/routing.md")


def answer_costs(
    outcomes: Outcomes, prompt_chars: np.ndarray, prices: PriceTable, overhead_tokens: float | None = None
) -> np.ndarray:
    """USD of each model answering each question: (overhead + prompt chars / cpt) x input price + output chars /
    cpt x output price. A missing output length takes that model's median (its answer is missing too)."""
    cpt = prices.chars_per_token
    overhead = prices.prompt_overhead_tokens if overhead_tokens is None else overhead_tokens
    price_in, price_out = prices.of(outcomes.models)
    chars = outcomes.output_chars.copy()
    medians = np.nanmedian(np.where(np.isnan(chars).all(axis=0), 0, chars), axis=0)
    chars = np.where(np.isnan(chars), medians[None, :], chars)
    tokens_in = overhead + np.asarray(prompt_chars, dtype=float)[:, None] / cpt
    return (tokens_in * price_in[None, :] + chars / cpt * price_out[None, :]) / 1e6
