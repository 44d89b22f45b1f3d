"""The latency benchmark's structure on tiny models (no timing assertions: performance claims stay out of tests)."""

from __future__ import annotations

import pytest

import routerforge as rf
from routerforge.bench.latency import CONFIGURATIONS, default_prompts, format_table, latency_benchmark
from routerforge.data.synth import write_jsonl

TASKS = ("category", "pii", "jailbreak", "intent")
STEPS = {"max_steps": 4, "batch_size": 8, "lr": 1e-3, "patience": 0, "warmup": 0.0, "max_length": 32}


@pytest.fixture(scope="module")
def models(tiny_bert, tmp_path_factory):
    """Four tiny per-task models and a tiny bundle, trained once for the module (a few steps: weights are
    irrelevant here)."""
    root = tmp_path_factory.mktemp("bench")
    data = {
        task: rf.data.load(
            task,
            str(write_jsonl(task, root / f"{task}.jsonl", 80, seed=1)),
            **({"group_by": "template_id"} if task == "pii" else {}),
        )
        for task in TASKS
    }
    per_task = {}
    for task in TASKS:
        per_task[task] = root / task
        rf.train(
            data[task],
            model=str(tiny_bert),
            output=per_task[task],
            hyperparams=STEPS,
            progress=False,
            evaluate_after=False,
        )
    rf.train_multitask(
        data, model=str(tiny_bert), output=root / "bundle", hyperparams=STEPS, progress=False, evaluate_after=False
    )
    return per_task, root / "bundle"


def test_latency_benchmark_reports_every_configuration(models):
    per_task, bundle = models
    prompts = {
        "short": ["what is the derivative of x squared", "send an email to my manager"],
        "long": ["call john smith at 555 123 4567 about the integral. " * 40],
    }
    result = latency_benchmark(
        per_task, bundle, prompts=prompts, repeats=2, batch=4, window=32, overlap=8, progress=False
    )
    configs = result["configurations"]
    assert list(configs) == list(CONFIGURATIONS)
    for name in ("multitask onnx", "multitask onnx-int8"):  # nothing exported in the bundle
        assert configs[name]["status"] == "not exported" and "sets" not in configs[name]
    baseline, multitask = configs["per-task torch"], configs["multitask torch"]
    assert baseline["status"] == multitask["status"] == "ok"
    assert set(baseline["heads"]) == set(TASKS) and set(multitask["heads"]["bundle"]) == set(TASKS)
    for entry in (baseline, multitask):
        assert set(entry["sets"]) == {"short", "long"}
        for row in entry["sets"].values():
            assert row["batch1"]["n"] == 2 and row["batch1"]["p50_ms"] > 0 and row["speedup_p50_vs_per_task"] > 0
        assert entry["sets"]["short"]["throughput"]["batch_size"] == 4
        assert entry["sets"]["long"]["throughput"] is None  # the long text: batch 1 only
        assert entry["sets"]["long"]["windows"] > 1 and entry["sets"]["long"]["truncated"] is False
    assert set(baseline["sets"]["short"]["per_model"]) == set(TASKS)
    assert baseline["sets"]["short"]["speedup_p50_vs_per_task"] == 1.0
    assert result["settings"]["repeats"] == 2 and result["settings"]["window"]["effective"] == 32
    assert result["machine"]["cpu_count"] and result["machine"]["torch"]
    assert result["prompt_sets"]["long"]["n_texts"] == 1

    table = format_table(result).splitlines()
    assert "texts/s at batch 4" in table[0]
    assert len(table) == 2 + 2 * 2 + 2  # header, rule, 2 measured configurations x 2 sets, 2 not exported
    assert sum("not exported" in line for line in table) == 2


def test_default_prompts_have_the_asked_sizes(tiny_bert):
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tiny_bert / "tokenizer.json"))
    prompts = default_prompts(tiny_bert, n_texts=3, medium_tokens=120, long_chars=2000)
    assert [len(prompts[k]) for k in ("short", "medium", "long")] == [3, 3, 1]
    assert len(prompts["long"][0]) == 2000
    for name, tokens in (("short", 30), ("medium", 120)):
        counts = [len(tokenizer.encode(t, add_special_tokens=False).ids) for t in prompts[name]]
        assert all(abs(c - tokens) <= 2 for c in counts), (name, counts)
