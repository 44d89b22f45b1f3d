"""``routerforge bench routing``: which model should answer each request, measured as an accuracy-cost frontier.

>>> outcomes = "data/model_outcomes/mmlu_pro_outcomes.jsonl"
>>> result = routing_benchmark("runs/routing/category", outcomes=outcomes, prices="configs/model-prices.yaml")
>>> print(format_table(result)); plot_frontier(result, "benchmarks/results/routing.png")

The category model's own split manifest decides the rows: routing tables (best model per category, the frozen
selector) are fitted on its training split and every router is scored on its test split, so no evaluated
question was seen by the classifier or a table. Manifests identify rows by ``source#line``; the question id is
read from that line of the source file (its text is checked against the manifest's row). Without a model
(``probs="tfidf"`` and no model directory), a seeded stratified split of the questions file stands in.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import RouterforgeError
from ..routing import frontier as fr
from ..routing import strategies as st
from ..routing.outcomes import DEFAULT_POOL, Outcomes, answer_costs, load_outcomes, load_prices
from ..routing.splits import split_rows

LAMBDAS = [0.0, *np.logspace(0, 4.5, 46).tolist()]  # accuracy traded per USD per request
EPSILONS = np.round(np.arange(0, 0.301, 0.005), 3).tolist()


def own_split(questions: str | Path, test: float = 0.1, seed: int = 13) -> dict:
    """A stratified split of the questions file, for running without a trained category model."""
    from sklearn.model_selection import train_test_split

    rows = [json.loads(line) for line in open(questions, encoding="utf-8") if line.strip()]
    cats = np.array([r["category"] for r in rows], dtype=object)
    train, held = train_test_split(np.arange(len(rows)), test_size=test, random_state=seed, stratify=cats)
    pack = lambda idx: (  # noqa: E731
        np.array([rows[i]["question_id"] for i in idx]),
        [rows[i]["question"] for i in idx],
        cats[idx],
    )
    return {"labels": sorted(set(cats)), "train": pack(train), "test": pack(held), "text_field": "question"}


def tfidf_probs(train_texts, train_cats, test_texts, labels: list[str]) -> np.ndarray:
    """Category probabilities from TF-IDF + logistic regression fitted on the training split (a stand-in
    classifier, and a check that the routers do not depend on one model)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vectoriser = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2)
    x_train = vectoriser.fit_transform(train_texts)
    model = LogisticRegression(C=10.0, max_iter=2000).fit(x_train, list(train_cats))
    probs = model.predict_proba(vectoriser.transform(test_texts))
    out = np.zeros((len(test_texts), len(labels)))
    for j, label in enumerate(model.classes_):
        out[:, labels.index(label)] = probs[:, j]
    return out


def model_probs(
    model_dir: str | Path, texts: list[str], labels: list[str], models: list[str], backend: str | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """The category head's probability vectors (the served runtime, calibrated temperature included) and, when
    the bundle has a model-selector head, its P(correct) per pool model (None otherwise), from the same pass."""
    from ..runtime.engine import Router

    router = Router.load(model_dir, backend)
    signals = router.classify_batch(texts)
    probs = np.array([[(s.category.probs if s.category else {}).get(label, 0.0) for label in labels] for s in signals])
    if "selector" not in router.heads:
        return probs, None
    missing = [m for m in models if m not in router.heads["selector"]["label_names"]]
    if missing:
        raise RouterforgeError(
            f"the selector head was not fitted for {missing}",
            hint="use the pool it was fitted on, or run routerforge train-selector with this --pool",
        )
    return probs, np.array([[s.selector.probs[m] for m in models] for s in signals if s.selector])


def frozen_selector(train_texts, train_correct: np.ndarray, test_texts) -> np.ndarray:
    """Intermediate per-request selector on frozen features: one TF-IDF logistic regression per pool model,
    P(correct | text). Not the bundle head of issue 17 part 3 (that shares the encoder)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vectoriser = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2)
    x_train, x_test = vectoriser.fit_transform(train_texts), vectoriser.transform(test_texts)
    out = np.empty((len(test_texts), train_correct.shape[1]))
    for j in range(train_correct.shape[1]):
        known = ~np.isnan(train_correct[:, j])
        model = LogisticRegression(C=1.0, max_iter=2000).fit(x_train[known], train_correct[known, j].astype(int))
        out[:, j] = model.predict_proba(x_test)[:, 1]
    return out


def _family(points: list[dict]) -> list[tuple[float, float]]:
    return [(p["cost_per_1k"], p["accuracy"]) for p in points]


def evaluate_routers(
    train: Outcomes,
    train_cost: np.ndarray,
    test: Outcomes,
    test_cost: np.ndarray,
    labels: list[str],
    probs: np.ndarray,
    *,
    selector: np.ndarray | None = None,
    learned: np.ndarray | None = None,
    resamples: int = fr.BOOTSTRAP,
    seed: int = 0,
) -> dict:
    """Every baseline and router on the test rows, their sweeps, and the frontier metrics (pure numpy)."""
    models = test.models
    table = st.fit_table(train.correct, train_cost, train.categories, labels, models)
    true_idx = np.array([labels.index(c) for c in test.categories])
    estimates = {
        "category_predicted": table.expect(st.one_hot(probs.argmax(axis=1), len(labels))),
        "category_true": table.expect(st.one_hot(true_idx, len(labels))),
        "expected_accuracy": table.expect(probs),
    }
    if selector is not None:  # per-model mean training cost: output length is unknown before answering
        estimates["selector_frozen_tfidf"] = (selector, np.broadcast_to(train_cost.mean(axis=0), selector.shape))
    if learned is not None:  # the bundle's selector head: P(correct | request) from the shared encoder
        estimates["selector_head"] = (learned, np.broadcast_to(train_cost.mean(axis=0), learned.shape))
    run = lambda choice: fr.score(test.correct, test_cost, choice, resamples=resamples, seed=seed)  # noqa: E731
    n = len(test)
    singles = {m: run(np.full(n, j)) for j, m in enumerate(models)}
    baselines = {
        "random": run(st.random_choice(n, len(models), seed)),
        "oracle": run(st.oracle(test.correct, test_cost)),
    }
    routers = {name: run(st.top_score(acc)) for name, (acc, _) in estimates.items()}
    sweeps = {}
    for name, (acc, cost) in estimates.items():
        for rule, choices in st.sweep(acc, cost, LAMBDAS, EPSILONS).items():
            sweeps[f"{name}/{rule}"] = [{"param": param, **run(choice)} for param, choice in choices]

    single_points = [(s["cost_per_1k"], s["accuracy"]) for s in singles.values()]
    hull = fr.upper_hull(single_points)
    weak = min(single_points)  # the cheapest single model
    strong = max(single_points, key=lambda p: (p[1], -p[0]))  # the most accurate single model
    best_acc = strong[1]
    target95 = 0.95 * best_acc
    # cheapest single model that reaches the most accurate one's accuracy: that model itself (ties: cheaper)
    match_cost = min(c for c, a in single_points if a >= best_acc)
    oracle_acc = baselines["oracle"]["accuracy"]

    def summary(points: list[tuple[float, float]], mix: bool = False) -> dict:
        reach = fr.cost_to_reach(points, best_acc)
        return {
            "apgr": fr.apgr(points, weak, strong, mix=mix),
            "cost_to_95pct_best": fr.cost_to_reach(points, target95, mix=mix),
            "cost_to_match_best": reach,
            "match_cost_ratio": None if reach is None else reach / match_cost,
            "best_accuracy": max(a for _, a in points),
            "widest_gain_over_hull": fr.widest_gain(points, hull),
            "gap_to_hull": fr.gap_profile(points, hull),
            "gap_to_hull_mixing": fr.gap_profile(points, hull, mix=True),
        }

    families = {}
    for name in estimates:
        points = [(r["cost_per_1k"], r["accuracy"]) for r in (routers[name],)]
        for rule in ("cost_aware", "epsilon"):
            points += _family(sweeps[f"{name}/{rule}"])
        families[name] = summary(points) | {"frontier": fr.frontier(points)}
    for group in (singles, baselines, routers):
        for result in group.values():
            result["regret_vs_oracle"] = oracle_acc - result["accuracy"]
    return {
        "models": models,
        "rows": n,
        "singles": singles,
        "baselines": baselines,
        "routers": routers,
        "sweeps": sweeps,
        "single_hull": hull,
        "single_hull_summary": summary(single_points, mix=True),
        "families": families,
        "weak": {"model": models[single_points.index(weak)], "cost_per_1k": weak[0], "accuracy": weak[1]},
        "strong": {"model": models[single_points.index(strong)], "cost_per_1k": strong[0], "accuracy": strong[1]},
        "classification_loss": routers["category_true"]["accuracy"] - routers["category_predicted"]["accuracy"],
        "table": {
            "labels": labels,
            "accuracy": np.round(table.accuracy, 4).tolist(),
            "cost_per_1k": np.round(table.cost * 1000, 4).tolist(),
            "support": table.support.tolist(),
        },
    }


def routing_benchmark(
    model_dir: str | Path | None = None,
    *,
    outcomes: str | Path,
    prices: str | Path,
    questions: str | Path | None = None,
    pool: list[str] | tuple[str, ...] = DEFAULT_POOL,
    probs: str = "model",
    overhead_tokens: float | None = None,
    selector: bool = True,
    backend: str | None = None,
    resamples: int = fr.BOOTSTRAP,
    seed: int = 0,
) -> dict:
    """Load the split, outcomes and prices, get category probabilities (``probs``: model | tfidf) and score."""
    if model_dir is not None:
        split = split_rows(model_dir)
    elif questions is not None and probs == "tfidf":
        split = own_split(questions)
    else:
        raise RouterforgeError(
            "nothing to take the split from", hint="pass a category model directory, or --questions with --probs tfidf"
        )
    labels = split["labels"]
    table = load_prices(prices)
    every = load_outcomes(outcomes).select(list(pool))
    parts, dropped = {}, {}
    for name in ("train", "test"):
        ids, texts, _ = split[name]
        rows = every.rows(every.index_of(ids))
        keep = ~np.isnan(rows.correct).any(axis=1)  # score every router on the rows all pool models answered
        dropped[name] = int((~keep).sum())
        texts = [t for t, k in zip(texts, keep) if k]
        rows = rows.rows(np.flatnonzero(keep))
        cost = answer_costs(rows, np.array([len(t) for t in texts]), table, overhead_tokens)
        parts[name] = (rows, cost, texts)
    (train, train_cost, train_texts), (test, test_cost, test_texts) = parts["train"], parts["test"]
    unknown = sorted(set(test.categories) - set(labels))
    if unknown:
        raise RouterforgeError(f"outcome categories {unknown} are not labels of the category model")
    head = None
    if probs == "model":
        if model_dir is None:
            raise RouterforgeError("--probs model needs a model directory", hint="or use --probs tfidf")
        category_probs, head = model_probs(model_dir, test_texts, labels, list(pool), backend)
    elif probs == "tfidf":
        category_probs = tfidf_probs(train_texts, train.categories, test_texts, labels)
    else:
        raise RouterforgeError(f"unknown probability source {probs!r}", hint="model | tfidf")
    tfidf = frozen_selector(train_texts, train.correct, test_texts) if selector else None
    result = evaluate_routers(
        train,
        train_cost,
        test,
        test_cost,
        labels,
        category_probs,
        selector=tfidf,
        learned=head,
        resamples=resamples,
        seed=seed,
    )
    category_accuracy = float((np.array(labels)[category_probs.argmax(axis=1)] == test.categories).mean())
    return result | {
        "setup": {
            "model_dir": None if model_dir is None else str(model_dir),
            "split": "model manifest" if model_dir is not None else "own stratified split (seed 13, test 0.1)",
            "probs": probs,
            "category_accuracy_test": category_accuracy,
            "outcomes": str(outcomes),
            "prices": str(prices),
            "chars_per_token": table.chars_per_token,
            "prompt_overhead_tokens": table.prompt_overhead_tokens if overhead_tokens is None else overhead_tokens,
            "pool": list(pool),
            "train_rows": len(train),
            "test_rows": len(test),
            "rows_dropped_missing_outcome": dropped,
            "bootstrap_resamples": resamples,
            "lambdas": LAMBDAS,
            "epsilons": EPSILONS,
        }
    }


def _usd(value: float | None) -> str:
    return "-" if value is None else f"${value:.2f}"


def format_table(result: dict) -> str:
    """A Markdown table of every single model, baseline and router, then the frontier summary per family."""
    lines = ["| router | accuracy [95% CI] | $/1k requests | regret vs oracle |", "|---|---|---|---|"]

    def row(name: str, r: dict) -> None:
        lo, hi = r["ci95"]
        lines.append(
            f"| {name} | {r['accuracy']:.3f} [{lo:.3f}, {hi:.3f}] | {_usd(r['cost_per_1k'])} | "
            f"{r['regret_vs_oracle']:.3f} |"
        )

    for name, r in result["singles"].items():
        row(name, r)
    for group in ("baselines", "routers"):
        for name, r in result[group].items():
            row(name, r)
    lines += [
        "",
        "| family | APGR | $/1k at 95% of best | $/1k to match best | ratio | widest gain over hull (at $/1k) "
        "| above hull: share of range, min gap (steps) | same, mixing own points |",
        "|---|---|---|---|---|---|---|---|",
    ]
    hull_row = result["single_hull_summary"]
    for name, s in [("single-model hull (mixing)", hull_row), *result["families"].items()]:
        gain = s["widest_gain_over_hull"]
        ratio = "-" if s["match_cost_ratio"] is None else f"{s['match_cost_ratio']:.2f}"
        where = "-" if gain["gain"] is None else f"{100 * gain['gain']:+.1f} pts ({_usd(gain['cost_per_1k'])})"
        above = [
            "-"
            if gap["min_gap"] is None or s is hull_row
            else f"{100 * gap['share_above']:.0f}%, {100 * gap['min_gap']:+.1f} pts"
            for gap in (s["gap_to_hull"], s["gap_to_hull_mixing"])
        ]
        lines.append(
            f"| {name} | {s['apgr']:.3f} | {_usd(s['cost_to_95pct_best'])} | {_usd(s['cost_to_match_best'])} | "
            f"{ratio} | {where} | {above[0]} | {above[1]} |"
        )
    return "\n".join(lines)


def plot_frontier(result: dict, path: str | Path) -> Path:
    """Accuracy against cost per 1,000 requests (log scale): single models, their hull, each router family."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 6))
    for name, r in result["singles"].items():
        ax.scatter(r["cost_per_1k"], r["accuracy"], color="black", zorder=3)
        ax.annotate(name, (r["cost_per_1k"], r["accuracy"]), fontsize=7, xytext=(4, -10), textcoords="offset points")
    hull = [tuple(point) for point in result["single_hull"]]
    xs = np.geomspace(hull[0][0], hull[-1][0], 200)  # mixing is linear in cost: a curve on the log axis
    ax.plot(xs, [fr.hull_accuracy(hull, float(x)) for x in xs], "k--", label="single-model hull (random mixing)")
    for name, family in result["families"].items():
        points = family["frontier"]
        ax.step([c for c, _ in points], [a for _, a in points], where="post", label=f"{name} (frontier)")
    for name in ("random", "oracle"):
        r = result["baselines"][name]
        ax.scatter(r["cost_per_1k"], r["accuracy"], marker="x", label=name)
    ax.set_xscale("log")
    ax.set_xlabel("USD per 1,000 requests (list prices, estimated tokens)")
    ax.set_ylabel("accuracy (test split)")
    ax.set_title(f"Routing frontier on MMLU-Pro ({result['rows']} test questions)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path
