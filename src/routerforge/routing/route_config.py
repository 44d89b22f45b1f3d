"""``routerforge route-config``: a router YAML's ``categories.<name>.model_scores`` and ``default_model`` from
measured outcomes, with the numbers behind each choice as comments.

>>> text = route_config("data/model_outcomes/mmlu_pro_outcomes.jsonl", "configs/model-prices.yaml",
...                     model_dir="runs/routing/category", selection="cost_aware", cost_lambda=0.05,
...                     base="configs/router.example.yaml", output="router.yaml")

The table is fitted on the category model's training split (or, without a model, on every question of
``questions``). ``selection: top_score`` writes trade-off scores (accuracy - cost_lambda x USD per 1,000
requests, shifted so the lowest is 0) so the existing highest-score rule picks the trade-off; ``expected_accuracy`` and
``cost_aware`` write plain accuracies plus ``model_costs`` and let the policy weigh them per request.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import RouterforgeError
from . import strategies as st
from .outcomes import DEFAULT_POOL, answer_costs, load_outcomes, load_prices

SELECTIONS = ("top_score", "expected_accuracy", "cost_aware")


def _fitted(outcomes, prices, model_dir, questions, pool) -> tuple[st.CategoryTable, str, np.ndarray, np.ndarray]:
    """The category table and, for the default model, overall accuracy and cost per 1,000 requests."""
    every = load_outcomes(outcomes).select(list(pool))
    if model_dir is not None:
        from .splits import split_rows

        split = split_rows(model_dir)
        ids, texts, _ = split["train"]
        labels, where = split["labels"], f"training split of {model_dir}"
    elif questions is not None:
        rows = [json.loads(line) for line in open(questions, encoding="utf-8") if line.strip()]
        ids, texts = [r["question_id"] for r in rows], [r["question"] for r in rows]
        labels, where = sorted({r["category"] for r in rows}), f"every question of {questions}"
    else:
        raise RouterforgeError("route-config needs questions to price", hint="pass a category model or --questions")
    fitted = every.rows(every.index_of(ids))
    cost = answer_costs(fitted, np.array([len(t) for t in texts]), load_prices(prices))
    table = st.fit_table(fitted.correct, cost, fitted.categories, labels, list(pool))
    return table, f"{where}, {len(fitted)} questions", np.nanmean(fitted.correct, axis=0), cost.mean(axis=0) * 1000


def _pick(acc: np.ndarray, cost_1k: np.ndarray, cost_lambda: float, epsilon: float | None) -> int:
    if epsilon is not None:
        near = acc >= acc.max() - epsilon
        return int(np.where(near, cost_1k, np.inf).argmin())
    return int((acc - cost_lambda * cost_1k).argmax())


def route_config(
    outcomes: str | Path,
    prices: str | Path,
    *,
    model_dir: str | Path | None = None,
    questions: str | Path | None = None,
    pool: list[str] | tuple[str, ...] = DEFAULT_POOL,
    selection: str = "top_score",
    cost_lambda: float = 0.0,
    cost_epsilon: float | None = None,
    base: str | Path | None = None,
    output: str | Path | None = None,
) -> str:
    """The YAML text (written to ``output`` when given; validated as a whole router config when ``base`` is)."""
    import yaml

    if selection not in SELECTIONS:
        raise RouterforgeError(f"unknown selection {selection!r}", hint=f"choose one of {', '.join(SELECTIONS)}")
    if selection == "top_score" and cost_epsilon is not None:
        raise RouterforgeError(
            "--epsilon needs a per-request rule", hint="use --selection cost_aware (or drop --epsilon)"
        )
    table, where, overall_acc, overall_cost = _fitted(outcomes, prices, model_dir, questions, pool)
    costs_1k = table.cost * 1000
    raw: dict = {}
    if base is not None:
        raw = yaml.safe_load(Path(base).read_text(encoding="utf-8")) or {}
        if not isinstance(raw, dict):
            raise RouterforgeError("the base router config must be a YAML mapping", source=str(base))
    old_routes = raw.pop("categories", None) or {}
    chosen_default = _pick(overall_acc, overall_cost, cost_lambda, cost_epsilon)
    raw["default_model"] = table.models[chosen_default]
    raw["selection"] = selection
    if selection == "cost_aware":
        raw["cost_lambda"], raw["cost_epsilon"] = float(cost_lambda), cost_epsilon
    if selection != "top_score":
        raw["model_costs"] = {m: round(float(c), 4) for m, c in zip(table.models, overall_cost)}
    trade = f"lambda {cost_lambda:g} per $ per 1k" if cost_epsilon is None else f"epsilon {cost_epsilon:g}"
    lines = [
        "# written by routerforge route-config from measured outcomes (docs/routing.md)",
        f"# outcomes: {outcomes}; prices: {prices}; table fitted on: {where}",
        f"# selection: {selection}; trade-off: {trade}",
        f"# default_model: {raw['default_model']} (overall accuracy {overall_acc[chosen_default]:.3f}, "
        f"${overall_cost[chosen_default]:.2f} per 1,000 requests)",
        yaml.safe_dump(raw, sort_keys=False, allow_unicode=True).rstrip(),
        "categories:",
    ]
    for k, label in enumerate(table.labels):
        acc, cost = table.accuracy[k], costs_1k[k]
        best = _pick(acc, cost, cost_lambda, cost_epsilon)
        lines.append(
            f"  {json.dumps(label)}:  # {table.support[k]} questions; chosen {table.models[best]} "
            f"(accuracy {acc[best]:.3f}, ${cost[best]:.2f}/1k)"
        )
        lines.append("    model_scores:")
        # top_score: accuracy - lambda x cost, shifted so the lowest is 0 (scores must be >= 0; order kept)
        trade_score = acc - cost_lambda * cost
        values = trade_score - trade_score.min() if selection == "top_score" else acc
        for j, model in enumerate(table.models):
            lines.append(f"      {json.dumps(model)}: {values[j]:.4f}  # accuracy {acc[j]:.3f}, ${cost[j]:.2f} per 1k")
        reasoning = (old_routes.get(label) or {}).get("reasoning")
        if reasoning is not None:
            lines.append(f"    reasoning: {json.dumps(bool(reasoning))}")
    text = "\n".join(lines) + "\n"
    if output is not None:
        from ..io import write_text

        write_text(output, text)
        if base is not None:
            from ..serving.config import load_router_config

            load_router_config(output)  # a config that would not serve fails here, naming the field
    return text
