"""Routing for quality and cost (issue 17): outcomes and prices, routers, frontier metrics, the manifest join,
route-config and the policy's expected-accuracy / cost-aware selection. Small hand-made data only."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import yaml
from pydantic import ValidationError

from routerforge.bench.routing import evaluate_routers, routing_benchmark
from routerforge.errors import RouterforgeError
from routerforge.routing import frontier as fr
from routerforge.routing import strategies as st
from routerforge.routing.outcomes import Outcomes, PriceTable, answer_costs, load_outcomes, load_prices
from routerforge.routing.route_config import route_config
from routerforge.routing.splits import split_rows
from routerforge.runtime.signals import LabelSignal, Signals
from routerforge.serving import RouterConfig, decide

# -- frontier metrics ---------------------------------------------------------------------------------------


def test_upper_hull_drops_dominated_and_below_segment_points():
    points = [(1.0, 0.5), (2.0, 0.55), (3.0, 0.8), (4.0, 0.7), (5.0, 0.9)]
    # (2, .55) lies below the segment (1, .5)-(3, .8); (4, .7) is dearer and worse than (3, .8)
    assert fr.upper_hull(points) == [(1.0, 0.5), (3.0, 0.8), (5.0, 0.9)]
    assert fr.hull_accuracy(fr.upper_hull(points), 2.0) == pytest.approx(0.65)


def test_apgr_is_half_for_mixing_two_models_and_one_for_strong_accuracy_at_weak_cost():
    weak, strong = (1.0, 0.4), (11.0, 0.8)
    assert fr.apgr([weak, strong], weak, strong, mix=True) == pytest.approx(0.5, abs=1e-3)
    assert fr.apgr([(1.0, 0.8)], weak, strong) == pytest.approx(1.0)
    # a router reaching PGR 0.5 at normalised cost 0.2 and 1.0 at 0.6: 0.5 x 0.4 + 1 x 0.4
    assert fr.apgr([(3.0, 0.6), (7.0, 0.8)], weak, strong) == pytest.approx(0.6)


def test_cost_to_reach_steps_for_routers_and_interpolates_along_the_hull():
    points = [(1.0, 0.4), (11.0, 0.8)]
    assert fr.cost_to_reach(points, 0.6) == 11.0
    assert fr.cost_to_reach(points, 0.6, mix=True) == pytest.approx(6.0)
    assert fr.cost_to_reach(points, 0.9) is None


def test_score_reports_accuracy_inside_its_bootstrap_interval_and_cost_per_thousand():
    correct = np.array([[1, 0], [0, 1], [1, 1], [0, 0]] * 25, dtype=float)
    cost = np.tile([0.001, 0.01], (100, 1))
    result = fr.score(correct, cost, np.zeros(100, dtype=int), resamples=500)
    assert result["accuracy"] == pytest.approx(0.5)
    assert result["ci95"][0] < 0.5 < result["ci95"][1]
    assert result["cost_per_1k"] == pytest.approx(1.0)
    assert result["share"] == [1.0, 0.0]


def test_widest_gain_is_measured_against_the_hull():
    hull = [(1.0, 0.4), (11.0, 0.8)]
    gain = fr.widest_gain([(6.0, 0.65), (3.0, 0.6), (20.0, 0.95)], hull)  # the last one is outside the range
    assert gain["cost_per_1k"] == 3.0 and gain["gain"] == pytest.approx(0.12)


# -- strategies ---------------------------------------------------------------------------------------------


def test_cost_aware_rules_trade_accuracy_for_cost():
    acc = np.array([[0.5, 0.7, 0.72]])
    cost = np.array([[0.1, 1.0, 10.0]])
    assert st.top_score(acc).tolist() == [2]
    assert st.cost_aware(acc, cost, 0.0).tolist() == [2]
    assert st.cost_aware(acc, cost, 0.01).tolist() == [1]
    assert st.cost_aware(acc, cost, 1.0).tolist() == [0]
    assert st.within_epsilon(acc, cost, 0.03).tolist() == [1]
    assert st.within_epsilon(acc, cost, 0.0).tolist() == [2]


def test_oracle_takes_the_cheapest_right_model_else_the_cheapest():
    correct = np.array([[0, 1, 1], [0, 0, 0], [1, np.nan, 1]])
    cost = np.array([[1.0, 3.0, 2.0], [5.0, 1.0, 2.0], [9.0, 1.0, 3.0]])
    assert st.oracle(correct, cost).tolist() == [2, 1, 2]


def test_fit_table_shrinks_small_categories_towards_overall_accuracy():
    correct = np.array([[1.0, 0.0]] * 9 + [[0.0, 1.0]])
    cost = np.ones((10, 2))
    table = st.fit_table(correct, cost, ["a"] * 9 + ["b"], ["a", "b", "c"], ["m0", "m1"], prior=1.0)
    # b: one question, model 1 right: (1 + 0.1) / 2 = 0.55; model 0: (0 + 0.9) / 2 = 0.45
    assert table.accuracy[1] == pytest.approx([0.45, 0.55])
    assert table.accuracy[2] == pytest.approx([0.9, 0.1])  # no questions: the overall accuracy
    acc, _ = table.expect(np.array([[0.5, 0.5, 0.0]]))
    assert acc[0] == pytest.approx((table.accuracy[0] + table.accuracy[1]) / 2)


# -- outcomes and prices ------------------------------------------------------------------------------------


def _write_outcomes(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_load_outcomes_keeps_missing_answers_as_nan(tmp_path):
    path = _write_outcomes(
        tmp_path / "o.jsonl",
        [
            {"question_id": 1, "category": "a", "correct": {"x": 1, "y": 0}, "output_chars": {"x": 40, "y": 80}},
            {"question_id": 2, "category": "b", "correct": {"x": 0}, "output_chars": {"x": 20}},
        ],
    )
    outcomes = load_outcomes(path)
    assert outcomes.models == ["x", "y"] and np.isnan(outcomes.correct[1, 1])
    assert outcomes.select(["y"]).correct[0].tolist() == [0.0]
    with pytest.raises(RouterforgeError, match="not in the outcomes"):
        outcomes.select(["z"])
    with pytest.raises(RouterforgeError, match="no outcome"):
        outcomes.index_of([3])


def test_a_malformed_outcome_row_names_its_line(tmp_path):
    path = tmp_path / "o.jsonl"
    path.write_text('{"question_id": 1, "correct": {"x": 1}}\n{"category": "a"}\n')
    with pytest.raises(RouterforgeError) as err:
        load_outcomes(path)
    assert err.value.line == 2


def test_answer_costs_price_estimated_tokens():
    outcomes = Outcomes(np.array([1]), np.array(["a"]), ["x"], np.array([[1.0]]), np.array([[400.0]]))
    prices = PriceTable(
        chars_per_token=4, prompt_overhead_tokens=100, models={"x": dict(input=2.0, output=10.0, source="s", date="d")}
    )
    # input: 100 + 200 / 4 = 150 tokens x $2/M; output: 400 / 4 = 100 tokens x $10/M
    assert answer_costs(outcomes, np.array([200]), prices)[0, 0] == pytest.approx((150 * 2 + 100 * 10) / 1e6)
    with pytest.raises(RouterforgeError, match="no price"):
        prices.of(["y"])


def test_the_shipped_price_table_covers_the_default_pool():
    from routerforge.routing.outcomes import DEFAULT_POOL

    table = load_prices(Path(__file__).resolve().parents[1] / "configs" / "model-prices.yaml")
    table.of(list(DEFAULT_POOL))
    assert all(table.models[m].source and table.models[m].date for m in DEFAULT_POOL)


# -- end to end on a synthetic routing problem --------------------------------------------------------------

CATS = {"math": "integral derivative matrix prime vector", "law": "court statute tort contract appeal"}
CATS["history"] = "empire treaty dynasty revolution colony"
FILLER = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma tau".split()
BEST = {"math": "cheap-math", "law": "big", "history": "cheap-history"}


@pytest.fixture(scope="module")
def routing_problem(tmp_path_factory):
    """Three categories; each has one model that is always right on it (two cheap specialists, one dear
    generalist right on law and 60% elsewhere): a category router must beat every single model."""
    directory = tmp_path_factory.mktemp("routing")
    rng = random.Random(0)
    questions, outcomes = [], []
    for qid in range(180):
        cat = list(CATS)[qid % 3]
        words = rng.sample(CATS[cat].split(), 3) + rng.sample(FILLER, 6) + [f"q{qid}"]
        rng.shuffle(words)
        questions.append({"question_id": 1000 + qid, "question": " ".join(words), "category": cat})
        correct = {m: int(m == BEST[cat]) for m in ("cheap-math", "cheap-history")}
        correct["big"] = int(cat == "law" or rng.random() < 0.6)
        outcomes.append(
            {
                "question_id": 1000 + qid,
                "category": cat,
                "correct": correct,
                "output_chars": dict.fromkeys(correct, 400),
            }
        )
    (directory / "questions.jsonl").write_text("".join(json.dumps(q) + "\n" for q in questions))
    _write_outcomes(directory / "outcomes.jsonl", outcomes)
    price = lambda p: {"input": p, "output": p, "source": "test", "date": "2026-01"}  # noqa: E731
    prices = {"chars_per_token": 4, "prompt_overhead_tokens": 0}
    prices["models"] = {"cheap-math": price(0.1), "cheap-history": price(0.2), "big": price(10.0)}
    (directory / "prices.yaml").write_text(yaml.safe_dump(prices))
    return directory


def _fake_category_model(directory: Path, questions: Path) -> Path:
    """A model directory whose routerforge.json carries a real category split manifest (no weights needed)."""
    from routerforge.bundle import write_info
    from routerforge.data import load

    data = load("category", str(questions), text_field="question", label_field="category", seed=13)
    model = directory / "model"
    model.mkdir(exist_ok=True)
    labels = list(data.labels)
    write_info(
        model,
        {
            "task": "category",
            "kind": "sequence",
            "labels": labels,
            "label_names": labels,
            "data": {"manifest": data.manifest()},
        },
    )
    return model


def test_split_rows_recover_question_ids_from_the_manifest(routing_problem):
    model = _fake_category_model(routing_problem, routing_problem / "questions.jsonl")
    split = split_rows(model)
    rows = [json.loads(line) for line in open(routing_problem / "questions.jsonl")]
    by_id = {row["question_id"]: row for row in rows}
    train_ids, test_ids = split["train"][0], split["test"][0]
    assert len(test_ids) > 0 and not set(train_ids) & set(test_ids)
    for qid, text, cat in zip(*split["test"]):
        assert by_id[qid]["question"] == text and by_id[qid]["category"] == cat


def test_split_rows_find_moved_questions(routing_problem, tmp_path, monkeypatch):
    questions = tmp_path / "old" / "questions.jsonl"
    questions.parent.mkdir()
    questions.write_bytes((routing_problem / "questions.jsonl").read_bytes())
    model = _fake_category_model(routing_problem, questions)
    before = split_rows(model)
    questions.rename(tmp_path / "questions.jsonl")  # the data moved: found by name and sha256
    monkeypatch.setenv("ROUTERFORGE_DATA_DIRS", str(tmp_path))
    after = split_rows(model)
    assert all((before[s][0] == after[s][0]).all() and before[s][1] == after[s][1] for s in ("train", "test"))


def test_the_category_router_beats_every_single_model_and_the_oracle_bounds_it(routing_problem):
    result = routing_benchmark(
        _fake_category_model(routing_problem, routing_problem / "questions.jsonl"),
        outcomes=routing_problem / "outcomes.jsonl",
        prices=routing_problem / "prices.yaml",
        pool=["cheap-math", "cheap-history", "big"],
        probs="tfidf",
        resamples=200,
    )
    singles = [r["accuracy"] for r in result["singles"].values()]
    true_router = result["routers"]["category_true"]
    assert true_router["accuracy"] == 1.0 > max(singles)
    assert result["baselines"]["oracle"]["accuracy"] >= true_router["accuracy"]
    assert result["baselines"]["oracle"]["regret_vs_oracle"] == 0.0
    # every family's frontier reaches the best single model's accuracy for less than that model costs
    for family in result["families"].values():
        assert family["match_cost_ratio"] is not None and family["match_cost_ratio"] < 1
    assert result["classification_loss"] == pytest.approx(
        true_router["accuracy"] - result["routers"]["category_predicted"]["accuracy"]
    )
    assert result["setup"]["split"] == "model manifest"


def test_evaluate_routers_charges_classification_errors_to_the_predicted_router():
    labels = ["a", "b"]
    cats = np.array(["a", "b"] * 50, dtype=object)
    correct = np.stack([(cats == "a"), (cats == "b")], axis=1).astype(float)
    outcomes = Outcomes(np.arange(100), cats, ["ma", "mb"], correct, np.full((100, 2), 4.0))
    cost = np.full((100, 2), 0.001)
    wrong = np.tile([[0.0, 1.0], [1.0, 0.0]], (50, 1))  # the classifier always picks the other category
    result = evaluate_routers(outcomes, cost, outcomes, cost, labels, wrong, resamples=100)
    assert result["routers"]["category_true"]["accuracy"] == 1.0
    assert result["routers"]["category_predicted"]["accuracy"] == 0.0
    assert result["classification_loss"] == 1.0


def test_route_config_writes_a_valid_router_yaml_with_the_measured_choices(routing_problem, tmp_path):
    base = {
        "backends": [
            {"name": "b", "base_url": "http://localhost:1/v1", "models": ["cheap-math", "cheap-history", "big"]}
        ],
        "default_model": "big",
        "categories": {"math": {"model_scores": {"big": 1.0}, "reasoning": True}},
    }
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    common = dict(
        questions=routing_problem / "questions.jsonl",
        pool=["cheap-math", "cheap-history", "big"],
        base=tmp_path / "base.yaml",
    )
    text = route_config(
        routing_problem / "outcomes.jsonl", routing_problem / "prices.yaml", output=tmp_path / "r.yaml", **common
    )
    from routerforge.serving.config import load_router_config

    config = load_router_config(tmp_path / "r.yaml")
    assert {label: route.best_model() for label, route in config.categories.items()} == BEST
    assert config.categories["math"].reasoning is True  # kept from the base config
    assert "# accuracy" in text and config.selection == "top_score"
    config = RouterConfig.model_validate(
        yaml.safe_load(
            route_config(
                routing_problem / "outcomes.jsonl",
                routing_problem / "prices.yaml",
                selection="cost_aware",
                cost_lambda=0.5,
                **common,
            )
        )
    )
    assert config.selection == "cost_aware" and set(config.model_costs) == {"cheap-math", "cheap-history", "big"}
    assert config.model_costs["big"] > config.model_costs["cheap-math"]
    with pytest.raises(RouterforgeError, match="per-request rule"):
        route_config(routing_problem / "outcomes.jsonl", routing_problem / "prices.yaml", cost_epsilon=0.1, **common)


def test_bench_routing_cli_writes_json_and_plot(routing_problem, tmp_path):
    from typer.testing import CliRunner

    from routerforge.cli import app

    args = ["bench", "routing", "--outcomes", str(routing_problem / "outcomes.jsonl")]
    args += ["--prices", str(routing_problem / "prices.yaml"), "--questions", str(routing_problem / "questions.jsonl")]
    args += [
        "--probs",
        "tfidf",
        "--resamples",
        "50",
        "--output",
        str(tmp_path / "r.json"),
        "--plot",
        str(tmp_path / "r.png"),
    ]
    for model in ("cheap-math", "cheap-history", "big"):
        args += ["--pool", model]
    outcome = CliRunner().invoke(app, args)
    assert outcome.exit_code == 0, outcome.output
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["setup"]["split"].startswith("own stratified split")
    assert (tmp_path / "r.png").stat().st_size > 1000


# -- policy: selection ----------------------------------------------------------------------------------------

ROUTER = {
    "backends": [{"name": "b", "base_url": "http://localhost:1/v1", "models": ["small", "mid", "large"]}],
    "default_model": "small",
    "categories": {
        "math": {"model_scores": {"small": 0.3, "mid": 0.7, "large": 0.75}},
        "law": {"model_scores": {"small": 0.6, "mid": 0.2, "large": 0.65}},
    },
    "model_costs": {"small": 0.1, "mid": 1.0, "large": 10.0},
}


def _decide(config: dict, probs: dict[str, float]):
    top = max(probs, key=probs.__getitem__)
    signals = Signals(category=LabelSignal(top, probs[top], probs))
    request = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}
    return decide({(0, None): signals}, request, RouterConfig.model_validate(config))


def test_expected_accuracy_uses_the_whole_probability_vector():
    probs = {"math": 0.55, "law": 0.45}
    assert _decide(ROUTER, probs).model == "large"  # top_score: math's best
    decision = _decide(ROUTER | {"selection": "expected_accuracy", "categories": {
        "math": {"model_scores": {"small": 0.3, "mid": 0.7, "large": 0.6}},
        "law": {"model_scores": {"small": 0.6, "mid": 0.2, "large": 0.65}},
    }}, probs)  # fmt: skip
    # E[acc]: small .435, mid .475, large .6225 -> large, though mid is math's best
    assert decision.model == "large" and "E[acc]=0.623" in decision.reasons[0]
    decision = _decide(ROUTER | {"selection": "expected_accuracy"}, {"math": 0.3, "law": 0.7})
    assert decision.model == "large"  # .3 x .75 + .7 x .65 = .68 beats small .51, even below category_threshold


def test_cost_aware_selection_with_lambda_and_epsilon():
    probs = {"math": 0.9, "law": 0.1}  # E[acc]: small .33, mid .65, large .74
    assert _decide(ROUTER | {"selection": "cost_aware", "cost_lambda": 0.0}, probs).model == "large"
    assert _decide(ROUTER | {"selection": "cost_aware", "cost_lambda": 0.02}, probs).model == "mid"
    assert _decide(ROUTER | {"selection": "cost_aware", "cost_lambda": 1.0}, probs).model == "small"
    assert _decide(ROUTER | {"selection": "cost_aware", "cost_epsilon": 0.1}, probs).model == "mid"


def test_selection_config_errors_name_the_field():
    with pytest.raises(ValidationError, match="model_costs"):
        RouterConfig.model_validate(ROUTER | {"selection": "cost_aware", "model_costs": {"small": 1.0}})
    scores = {"math": {"model_scores": {"small": 3.0}}}
    with pytest.raises(ValidationError, match="accuracies"):
        RouterConfig.model_validate(ROUTER | {"selection": "expected_accuracy", "categories": scores})
    RouterConfig.model_validate(ROUTER | {"categories": scores})  # top_score: any non-negative score


def test_score_endpoint_script_merges_a_model_column_into_the_outcomes(tmp_path):
    """scripts/score-endpoint.py against the fake upstream (it answers "answer from MODEL")."""
    import subprocess
    import sys

    from routerforge.serving.fake_upstream import FakeUpstream, background_server

    data = tmp_path / "labelled.jsonl"
    rows = [{"question_id": 1, "category": "a", "prompt": "q1", "answer": "m1"}]
    rows.append({"question_id": 2, "category": "b", "prompt": "q2", "answer": "other"})
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    outcomes = _write_outcomes(
        tmp_path / "o.jsonl", [{"question_id": 1, "category": "a", "correct": {"x": 0}, "output_chars": {"x": 3}}]
    )
    script = Path(__file__).resolve().parents[1] / "scripts" / "score-endpoint.py"
    with background_server(FakeUpstream().app) as url:
        subprocess.run(
            [sys.executable, str(script), "--data", str(data), "--base-url", f"{url}/v1", "--model", "m1"]
            + ["--outcomes", str(outcomes), "--answer-regex", r"answer from (\S+)"],
            check=True,
            capture_output=True,
        )
    merged = load_outcomes(outcomes)
    assert merged.models == ["m1", "x"] and merged.question_ids.tolist() == [1, 2]
    assert merged.correct[:, 0].tolist() == [1.0, 0.0]  # "m1" matches question 1's answer only
    assert merged.correct[0, 1] == 0.0 and np.isnan(merged.correct[1, 1])  # the old column is kept
    assert merged.output_chars[0, 0] == len("answer from m1")


def test_the_routing_package_imports_no_torch():
    import subprocess
    import sys

    modules = ", ".join(
        f"routerforge.routing.{m}" for m in ("outcomes", "strategies", "frontier", "splits", "route_config")
    )
    code = f"import sys, {modules}; assert 'torch' not in sys.modules and 'transformers' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_gap_profile_measures_the_step_frontier_against_the_hull():
    hull = [(1.0, 0.4), (10.0, 0.8)]
    above = fr.gap_profile([(1.0, 0.5), (2.0, 0.7), (4.0, 0.8), (5.0, 0.85)], hull)
    assert above["share_above"] == 1.0 and above["min_gap"] > 0
    below = fr.gap_profile([(9.0, 0.9)], hull)  # nothing between 1 and 9: the cheapest model, below the hull
    assert below["share_above"] < 1.0 and below["min_gap"] < 0 and below["max_gap"] > 0


def test_gap_profile_with_mixing_lets_the_router_mix_its_own_points():
    hull = [(1.0, 0.4), (10.0, 0.8)]
    steps, mixing = (
        fr.gap_profile([(2.0, 0.6), (9.0, 0.9)], hull),
        fr.gap_profile([(2.0, 0.6), (9.0, 0.9)], hull, mix=True),
    )
    assert steps["min_gap"] < 0 <= mixing["min_gap"] and mixing["share_above"] == 1.0


# -- the learned selector: a fifth bundle head ----------------------------------------------------------------

POOL = ["cheap-math", "cheap-history", "big"]


@pytest.fixture(scope="module")
def selector_bundle(routing_problem, tiny_bert, tmp_path_factory):
    """A tiny bundle whose category head carries the routing problem's split manifest, with a selector fitted
    from its outcomes (frozen random encoder: the pooled vectors still tell the categories' words apart)."""
    from conftest import make_tiny_bundle
    from routerforge.data import load
    from routerforge.training.selector import train_selector

    data = load("category", str(routing_problem / "questions.jsonl"), text_field="question", seed=13)
    labels = list(data.labels)
    bundle = make_tiny_bundle(
        tmp_path_factory.mktemp("selector") / "bundle",
        tiny_bert,
        {"category": ("sequence", labels, labels)},
        info={"data": {"category": {"manifest": data.manifest()}}},
    )
    record = train_selector(bundle, outcomes=routing_problem / "outcomes.jsonl", pool=POOL, progress=False)
    return bundle, record


def test_the_selector_head_is_served_in_the_same_pass_and_picks_the_right_specialist(selector_bundle, routing_problem):
    from routerforge.bundle import read_info
    from routerforge.runtime.engine import Router

    bundle, record = selector_bundle
    info = read_info(bundle)
    assert info["heads"]["selector"]["kind"] == "multilabel" and info["heads"]["selector"]["label_names"] == POOL
    assert set(record["C"]) == set(POOL) and record["rows"]["test"] > 0
    singles = [s["accuracy_of_model"] for s in record["scores"]["test"].values()]
    # the likeliest model by the head is right more often than any one model alone (the specialists are right
    # only on their category; "big" on law and 60% elsewhere)
    assert record["choice_accuracy"]["test"] > max(singles)
    assert all(record["scores"]["test"][m]["roc_auc"] > 0.9 for m in ("cheap-math", "cheap-history"))
    router = Router.load(bundle, "torch")
    ids, texts, cats = split_rows(bundle)["test"]
    signals = router.classify_batch(texts)
    for s in signals:
        assert set(s.selector.probs) == set(POOL) and all(0 < p < 1 for p in s.selector.probs.values())
        assert s.selector.label == max(s.selector.probs, key=s.selector.probs.__getitem__)
    right = [s.selector.label == BEST[c] or (s.selector.label == "big" and c == "law") for s, c in zip(signals, cats)]
    assert np.mean(right) >= 0.7  # 18 test rows; a uniform pick among the three is right a third of the time
    assert Signals.from_dict(json.loads(signals[0].to_json())) == signals[0]
    assert "selector=" in repr(signals[0])


def test_the_selector_exports_with_parity_and_onnx_serves_the_same_probabilities(selector_bundle):
    from routerforge.exporters.exporter import export
    from routerforge.runtime.engine import Router

    bundle, _ = selector_bundle
    record = export(bundle, "onnx")
    assert record["parity"]["passed"] and "selector" in record["parity"]["heads"]
    text = "integral of a prime vector"
    torch_p = Router.load(bundle, "torch").classify(text).selector.probs
    onnx_p = Router.load(bundle, "onnx").classify(text).selector.probs
    assert onnx_p == pytest.approx(torch_p, abs=1e-4)


def test_refitting_the_selector_removes_exports_that_lack_it_and_calibration_keeps_its_scores(
    selector_bundle, routing_problem, tmp_path
):
    import shutil

    from routerforge.bundle import read_info
    from routerforge.evaluation import evaluate
    from routerforge.evaluation.calibrator import calibrate
    from routerforge.training.selector import train_selector

    bundle = tmp_path / "copy"
    shutil.copytree(selector_bundle[0], bundle)
    (bundle / "model.onnx").write_bytes(b"stale")  # as if exported before this head existed
    info = read_info(bundle)
    (bundle / "routerforge.json").write_text(json.dumps(info | {"exports": {"onnx": {"file": "model.onnx"}}}))
    train_selector(bundle, outcomes=routing_problem / "outcomes.jsonl", pool=POOL[:2], reexport=False, progress=False)
    assert not (bundle / "model.onnx").exists() and read_info(bundle)["exports"] == {}
    assert read_info(bundle)["heads"]["selector"]["label_names"] == POOL[:2]
    calibrate(bundle)
    info = read_info(bundle)
    assert set(info["metrics"]["selector"]["test"]) == set(POOL[:2]) and "category" in info["metrics"]
    with pytest.raises(RouterforgeError, match="bench routing"):
        evaluate(bundle, task="selector")
    with pytest.raises(RouterforgeError, match=r"not fitted for \['big'\]"):
        routing_benchmark(
            bundle, outcomes=routing_problem / "outcomes.jsonl", prices=routing_problem / "prices.yaml", pool=POOL
        )


def test_bench_routing_scores_the_selector_head_beside_the_category_routers(selector_bundle, routing_problem):
    result = routing_benchmark(
        selector_bundle[0],
        outcomes=routing_problem / "outcomes.jsonl",
        prices=routing_problem / "prices.yaml",
        pool=POOL,
        resamples=100,
    )
    head = result["routers"]["selector_head"]
    assert head["accuracy"] > max(r["accuracy"] for r in result["singles"].values())
    assert "selector_head" in result["families"]


def _learned(config: dict, p_correct: dict[str, float] | None):
    selector = None if p_correct is None else LabelSignal(max(p_correct, key=p_correct.get), 0.0, p_correct)
    signals = Signals(category=LabelSignal("math", 0.9, {"math": 0.9, "law": 0.1}), selector=selector)
    request = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}
    return decide({(0, None): signals}, request, RouterConfig.model_validate(config | {"selection": "learned"}))


def test_learned_selection_reads_p_correct_and_its_cost_rules():
    p = {"small": 0.5, "mid": 0.72, "large": 0.78, "unserved": 0.99}
    assert _learned(ROUTER, p).model == "large"  # the likeliest served model; "unserved" has no backend
    assert _learned(ROUTER | {"cost_lambda": 0.02}, p).model == "mid"  # 0.72 - 0.02 > 0.78 - 0.2
    assert _learned(ROUTER | {"cost_epsilon": 0.3}, p).model == "small"
    decision = _learned(ROUTER, None)
    assert decision.model == "small" and "selector missing" in decision.reasons[0]
    config = RouterConfig.model_validate(ROUTER | {"selection": "learned", "cost_lambda": 1.0})
    warnings = config.check_heads({"category"}, ["math", "law"])
    assert any("no selector head" in w for w in warnings)
    warnings = config.check_heads({"category", "selector"}, None, ["small", "unserved", "other"])
    assert any("unserved" in w and "no backend" in w for w in warnings)
