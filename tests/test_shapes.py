"""Token-shape features: the shape of each token from the original characters, trained into a per-task PII model
and a bundle, served through the runtime and every export, and shown to carry what an uncased tokenizer loses."""

from __future__ import annotations

import itertools
import json
import random

import numpy as np
import pytest
import torch

import routerforge as rf
from routerforge.errors import RouterforgeError
from routerforge.text.shapes import (
    ALPHANUMERIC,
    CAPITALISED,
    DIGITS,
    LOWER,
    MIXED,
    NONE,
    PUNCTUATION,
    UPPER,
    shape_of,
    token_shapes,
)
from routerforge.training.setup import ShapePadding

FAST = {"epochs": 6, "batch_size": 16, "lr": 3e-3, "patience": 0, "warmup": 0.0, "max_length": 32}
PREFIXES = ["we met ", "i saw ", "they called ", "ask ", "say hi to ", "wait for "]
SUFFIXES = ["today", "again", "at noon", "twice", "later", "first"]
NAMES = ["jordan", "brown", "may", "hunter", "mark", "bill", "grace", "rose", "frank", "will", "summer", "rich"]

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_shape_of_each_kind_of_token():
    assert [shape_of(t) for t in ("jordan", "Jordan", "USA", "J", "McDonald", "555", "A1", "-", "", "東京")] == [
        LOWER,
        CAPITALISED,
        UPPER,
        CAPITALISED,
        MIXED,
        DIGITS,
        ALPHANUMERIC,
        PUNCTUATION,
        NONE,
        LOWER,  # no case in the script: as lower case
    ]
    # special tokens have empty offsets; a word piece is read from its own characters
    assert token_shapes("Jackson 42", [(0, 0), (0, 4), (4, 7), (8, 10), (0, 0)]) == [
        NONE,
        CAPITALISED,
        LOWER,
        DIGITS,
        NONE,
    ]


def test_shape_padding_pads_with_zero_on_the_tokenizer_side():
    class Inner:
        def __call__(self, features):
            width = max(len(f["input_ids"]) for f in features)
            assert all("shape_ids" not in f for f in features)
            return {"input_ids": torch.zeros((len(features), width), dtype=torch.long)}

    features = [{"input_ids": [1, 2, 3], "shape_ids": [0, 2, 0]}, {"input_ids": [1, 0], "shape_ids": [0, 0]}]
    right = ShapePadding(Inner())(features)["shape_ids"].tolist()
    left = ShapePadding(Inner(), "left")(features)["shape_ids"].tolist()
    assert right == [[0, 2, 0], [0, 0, 0]] and left == [[0, 2, 0], [0, 0, 0]]
    assert features[0]["shape_ids"] == [0, 2, 0]  # the dataset's rows are not changed
    assert "shape_ids" not in ShapePadding(Inner())([{"input_ids": [1]}])


def _case_only_data(tmp_path, sentences: int = 1):
    """PII where only case tells a name from a word: "we met Jordan today" has a PERSON, "we met jordan today"
    none. An uncased tokenizer sees the same tokens in both. Each sentence occurs in one case only (the loader's
    case-folded dedup drops a text seen in both as a label conflict), the case drawn at random, so the context
    says nothing. ``sentences``: up to that many per row, so names also occur deep into a row (what a long text's
    windows hold)."""
    rng = random.Random(0)
    combos = list(itertools.product(PREFIXES, NAMES, SUFFIXES))
    rng.shuffle(combos)
    person_of = {combo: rng.random() < 0.5 for combo in combos}
    rows = []
    for i in range(400):
        text, spans = "", []
        for _ in range(rng.randint(1, sentences)):
            prefix, name, suffix = combos[i] if sentences == 1 else rng.choice(combos)
            word = name.capitalize() if person_of[prefix, name, suffix] else name
            at = (len(text) + 1 if text else 0) + len(prefix)
            if person_of[prefix, name, suffix]:
                spans.append({"entity_type": "PERSON", "start": at, "end": at + len(word)})
            text = (text + " " if text else "") + f"{prefix}{word} {suffix}" + ("." if sentences > 1 else "")
        rows.append({"text": text, "spans": spans, "template_id": i})
    source = tmp_path / "case.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rf.data.load("pii", str(source), group_by="template_id")


def _f1(result) -> float:
    return result.metrics["test"]["spans"]["micro_f1"]["value"]


@pytest.fixture(scope="module")
def case_models(tiny_bert, tmp_path_factory):
    """The same tiny PII training with and without shape features (with a CRF: both wrappers together)."""
    tmp = tmp_path_factory.mktemp("shapes")
    data = _case_only_data(tmp)
    results = {
        shaped: rf.train(
            data,
            model=str(tiny_bert),
            output=tmp / f"model-{shaped}",
            hyperparams=dict(FAST, shape_features=shaped),
            crf=True,
            progress=False,
        )
        for shaped in (False, True)
    }
    return data, results


def test_shape_features_carry_case_that_the_uncased_tokenizer_loses(case_models):
    data, results = case_models
    plain, shaped = results[False], results[True]
    assert plain.info["shape_features"] is None and shaped.info["shape_features"] == "v1"
    assert (shaped.output / "shapes.safetensors").is_file() and not (plain.output / "shapes.safetensors").exists()
    assert _f1(shaped) > 0.9, _f1(shaped)
    # it cannot tell the two apart: it guesses (0.51-0.73 over 8 seeds, against 0.96-1.0 with shapes)
    assert _f1(plain) < _f1(shaped) - 0.15, _f1(plain)
    text_pairs = ["we met Jordan today", "we met jordan today"]
    for result, differ in ((plain, False), (shaped, True)):
        logits = rf.Router.load(result.output, "torch").window_logits(text_pairs)["pii"]
        assert (not np.allclose(logits[0], logits[1])) == differ
    router = rf.Router.load(shaped.output, "torch")
    assert [(s.entity_type, s.text) for s in router.classify("ask Frank twice").pii] == [("PERSON", "Frank")]
    assert router.classify("ask frank twice").pii == []


@pytest.mark.parametrize("fmt", ["onnx", "onnx-int8", "torchscript"])
def test_a_shape_model_exports_with_parity(case_models, fmt):
    _, results = case_models
    out = results[True].output
    record = rf.export(out, format=fmt)
    assert record["parity"]["passed"], record["parity"]
    backend = {"onnx": "onnx", "onnx-int8": "onnx-int8", "torchscript": "torchscript"}[fmt]
    exported, reference = rf.Router.load(out, backend), rf.Router.load(out, "torch")
    texts = ["we met Jordan today", "i saw grace again", "they called Rose Hunter at noon"]
    got, want = exported.classify_batch(texts), reference.classify_batch(texts)
    assert [[(s.entity_type, s.start, s.end) for s in g.pii] for g in got] == [
        [(s.entity_type, s.start, s.end) for s in w.pii] for w in want
    ]


def test_a_bundle_with_shape_features_trains_serves_and_exports(tiny_bert, tmp_path):
    from routerforge.data.synth import write_jsonl

    data = {
        "pii": _case_only_data(tmp_path, sentences=12),
        "jailbreak": rf.data.load("jailbreak", str(write_jsonl("jailbreak", tmp_path / "jb.jsonl", 160, seed=1))),
    }
    result = rf.train_multitask(
        data,
        model=str(tiny_bert),
        output=tmp_path / "bundle",
        hyperparams=dict(FAST, epochs=16, shape_features=True),  # task sampling: fewer PII steps an epoch
        progress=False,
    )
    assert result.info["shape_features"] == "v1" and (tmp_path / "bundle" / "shapes.safetensors").is_file()
    # 0.88-0.93 over seeds; the same bundle without shapes only guesses the case (0.61-0.63)
    assert result.metrics["pii"]["test"]["spans"]["micro_f1"]["value"] > 0.8
    record = rf.export(tmp_path / "bundle", format="onnx")
    assert record["parity"]["passed"]
    onnx = rf.Router.load(tmp_path / "bundle", "onnx")
    # case decides: every name in every context, capitalised (one PERSON, the name) and in lower case (nothing).
    # Without shapes the two texts are the same tokens, so at most half of these answers can be right; a tiny
    # model with shapes is not perfect (test F1 ~0.9), and how far from perfect varies with the machine's numerics
    answers = {
        (prefix, name): (
            [s.text for s in onnx.classify(f"{prefix}{name.capitalize()} at noon").pii],
            [s.text for s in onnx.classify(f"{prefix}{name} at noon").pii],
        )
        for prefix in PREFIXES
        for name in NAMES
    }
    right = sum((found == [name.capitalize()]) + (flagged == []) for (_, name), (found, flagged) in answers.items())
    wrong = {key: got for key, got in answers.items() if got != ([key[1].capitalize()], [])}
    assert right >= 0.85 * 2 * len(answers), wrong
    # a long text goes through windows with its shapes cut the same way as its tokens: the name in the last
    # window is found where it is (a misaligned shape row would read "again" or "called" as capitalised)
    long = " ".join(["we met jordan today."] * 60 + ["they called Mark again"])
    signals = onnx.classify(long)
    assert signals.windows > 1 and ("Mark", long.index("Mark")) in [(s.text, s.start) for s in signals.pii]


def test_an_unknown_shape_vocabulary_is_refused(case_models, tmp_path):
    import shutil

    _, results = case_models
    copy = tmp_path / "model"
    shutil.copytree(results[True].output, copy)
    info = json.loads((copy / "routerforge.json").read_text())
    (copy / "routerforge.json").write_text(json.dumps(info | {"shape_features": "v99"}))
    with pytest.raises(RouterforgeError, match="unknown shape_features version 'v99'"):
        rf.Router.load(copy, "torch")
