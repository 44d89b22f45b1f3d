"""Leakage-free splits: dedup, grouping, stratification, near-duplicates, predefined splits and the manifest."""

from __future__ import annotations

import json
import os
import random
from collections import Counter
from pathlib import Path

import pytest

from routerforge.data import load, load_split_from_manifest
from routerforge.data.schema import Example
from routerforge.data.sources import Loaded
from routerforge.data.splits import SPLITS, make_splits, normalise
from routerforge.errors import RouterforgeError
from routerforge.tasks import MMLU_PRO_CATEGORIES, get_task

# Long enough that changing one word keeps the TF-IDF cosine (1-2 grams) well above 0.9.
LONG_A = (
    "the quarterly report shows that revenue from the northern region grew faster than expected while costs "
    "stayed flat across all departments and the board asked the finance team to prepare a detailed forecast "
    "for the next two years before the annual meeting in spring"
)
LONG_A_EDIT = LONG_A.replace("northern", "southern")
LONG_B = (
    "please summarise the attached research paper about protein folding and list the three most important "
    "experimental results together with the methods the authors used to validate them in the laboratory "
    "and any limitations they mention in their discussion section"
)
LONG_B_EDIT = LONG_B.replace("three", "four")


def sentences(n: int, seed: int = 0) -> list[str]:
    """``n`` distinct random sentences that share no words (no near-duplicates among them)."""
    rng = random.Random(seed)
    out: set[str] = set()
    while len(out) < n:
        out.add(" ".join("".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(7)) for _ in range(8)))
    return sorted(out)


def write_jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def jailbreak_rows(n: int, seed: int = 0) -> list[dict]:
    return [{"text": t, "label": ("benign", "jailbreak")[i % 2]} for i, t in enumerate(sentences(n, seed))]


def norm_texts(examples) -> set[str]:
    return {normalise(e.text) for e in examples}


def assert_disjoint(data):
    train, val, test = (norm_texts(data.split(s)) for s in SPLITS)
    assert not train & val and not train & test and not val & test


# ---------------------------------------------------------------------------------------------------- dedup


def test_exact_dedup_and_conflicts(tmp_path):
    rows = jailbreak_rows(30)
    rows += [
        {"text": "Hello   World", "label": "benign"},
        {"text": "hello world", "label": "benign"},
        {"text": "HELLO WORLD ", "label": "benign"},
        {"text": "\uff28ello world", "label": "benign"},  # NFKC
        {"text": "Conflict text", "label": "benign"},
        {"text": "conflict TEXT", "label": "jailbreak"},
        {"text": "conflict text", "label": "benign"},
    ]
    data = load("jailbreak", write_jsonl(tmp_path / "d.jsonl", rows), seed=1)
    report = data.report
    assert report["rows_read"] == 37
    assert report["duplicates_removed"] == 3
    assert report["conflicting_label_rows_dropped"] == 3
    everything = [e for s in SPLITS for e in data.split(s)]
    assert len(everything) == 31 == sum(report["rows_per_split"].values())
    assert [normalise(e.text) for e in everything].count("hello world") == 1
    assert not any(normalise(e.text) == "conflict text" for e in everything)


def test_pii_conflicting_spans_dropped(tmp_path):
    rows = [{"text": t, "spans": [{"entity_type": "PERSON", "start": 0, "end": 7}]} for t in sentences(20)]
    rows += [
        {"text": "Call Ann", "spans": [{"entity_type": "PERSON", "start": 5, "end": 8}]},
        {"text": "call ann", "spans": []},
    ]
    data = load("pii", write_jsonl(tmp_path / "pii.jsonl", rows))
    assert data.report["conflicting_label_rows_dropped"] == 2
    assert data.labels == ("PERSON",)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_no_text_in_two_splits(tmp_path, seed):
    texts = sentences(25, seed)
    rng = random.Random(seed)
    rows, used = [], set()
    for _ in range(120):  # every text several times, in varying case and spacing
        index = rng.randrange(len(texts))
        used.add(index)
        text = rng.choice([texts[index], texts[index].upper(), texts[index].replace(" ", "  "), f" {texts[index]}\t"])
        rows.append({"text": text, "label": ("benign", "jailbreak")[index % 2]})
    data = load("jailbreak", write_jsonl(tmp_path / "d.jsonl", rows), seed=seed, val=0.2, test=0.2)
    assert_disjoint(data)
    assert sum(len(data.split(s)) for s in SPLITS) == len(used)
    assert data.report["duplicates_removed"] == 120 - len(used)


# ---------------------------------------------------------------------------------------------------- near-duplicates


def predefined_rows() -> list[dict]:
    fill = sentences(40, seed=7)
    rows = [
        {"text": LONG_A, "label": "benign", "split": "train", "g": "a"},
        {"text": LONG_B, "label": "jailbreak", "split": "train", "g": "b"},
    ]
    rows += [
        {"text": t, "label": ("benign", "jailbreak")[i % 2], "split": "train", "g": f"tr{i}"}
        for i, t in enumerate(fill[:24])
    ]
    rows += [{"text": LONG_B_EDIT, "label": "jailbreak", "split": "val", "g": "v0"}]
    rows += [
        {"text": t, "label": ("benign", "jailbreak")[i % 2], "split": "val", "g": f"v{i % 3}"}
        for i, t in enumerate(fill[24:30])
    ]
    rows += [{"text": LONG_A_EDIT, "label": "benign", "split": "test", "g": "t0"}]
    rows += [
        {"text": t, "label": ("benign", "jailbreak")[i % 2], "split": "test", "g": f"t{i % 3}"}
        for i, t in enumerate(fill[30:40])
    ]
    return rows


def test_near_duplicates_move_to_train(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", predefined_rows())
    data = load("jailbreak", path, split_field="split", val_split="val")
    moved = data.report["near_duplicates_moved_to_train"]
    assert moved == {"val": 1, "test": 1, "threshold": 0.9}
    train_texts = {e.text for e in data.train}
    assert {LONG_A_EDIT, LONG_B_EDIT} <= train_texts
    assert LONG_A_EDIT not in {e.text for e in data.test} and LONG_B_EDIT not in {e.text for e in data.val}
    assert len(data.test) == 10 and len(data.val) == 6 and len(data.train) == 28
    assert_disjoint(data)


def test_near_duplicate_check_can_be_turned_off(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", predefined_rows())
    data = load("jailbreak", path, split_field="split", val_split="val", near_duplicate_threshold=1.01)
    assert data.report["near_duplicates_moved_to_train"]["test"] == 0
    assert LONG_A_EDIT in {e.text for e in data.test}


def test_near_duplicate_moves_its_whole_group(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", predefined_rows())
    data = load("jailbreak", path, split_field="split", val_split="val", group_by="g")
    moved = data.report["near_duplicates_moved_to_train"]
    # test group t0 = LONG_A_EDIT + fill rows 30, 33, 36, 39; val group v0 = LONG_B_EDIT + fill rows 24, 27
    assert moved["test"] == 5 and moved["val"] == 3
    assert not any(e.group == "t0" for e in data.test) and not any(e.group == "v0" for e in data.val)
    assert sum(e.group == "t0" for e in data.train) == 5
    assert {e.group for e in data.test} == {"t1", "t2"}
    assert_disjoint(data)


# ---------------------------------------------------------------------------------------------------- grouping


@pytest.mark.parametrize("seed", [0, 5])
def test_grouped_split_keeps_groups_together(tmp_path, seed):
    texts = sentences(90, seed)
    rows = [{"text": t, "label": ("benign", "jailbreak")[i % 2], "template_id": i // 3} for i, t in enumerate(texts)]
    data = load(
        "jailbreak", write_jsonl(tmp_path / "d.jsonl", rows), group_by="template_id", seed=seed, val=0.2, test=0.2
    )
    where = {}
    for name in SPLITS:
        for e in data.split(name):
            assert where.setdefault(e.group, name) == name, f"group {e.group} in two splits"
    assert len(where) == 30 and all(data.split(s) for s in SPLITS)


def test_single_group_cannot_be_split(tmp_path):
    rows = [{"text": t, "label": "benign", "g": "same"} for t in sentences(10)]
    with pytest.raises(RouterforgeError, match="single group"):
        load("jailbreak", write_jsonl(tmp_path / "d.jsonl", rows), group_by="g")


# ---------------------------------------------------------------------------------------------------- stratification


@pytest.mark.parametrize("singleton", [False, True])
@pytest.mark.parametrize("seed", range(6))
def test_stratification_keeps_every_class_with_three_rows_in_train(tmp_path, seed, singleton):
    sizes = {"math": 30, "law": 12, "biology": 4, "history": 3, "physics": 3, "economics": 3}
    if singleton:
        sizes["health"] = 1  # one lone row must not switch stratification off for every other class
    labels = [label for label, n in sizes.items() for _ in range(n)]
    rows = [{"question": t, "category": label} for t, label in zip(sentences(len(labels), seed), labels)]
    data = load("category", write_jsonl(tmp_path / "q.jsonl", rows), seed=seed, val=0.2, test=0.2)
    in_train = Counter(e.label for e in data.train)
    assert all(in_train[label] >= 1 for label, n in sizes.items() if n >= 3), in_train
    assert data.labels == MMLU_PRO_CATEGORIES


# ---------------------------------------------------------------------------------------------------- predefined splits


def test_predefined_split_carves_val_from_train(tmp_path):
    texts = sentences(60, 3)
    rows = [
        {"text": t, "label": ("benign", "jailbreak")[i % 2], "part": "test" if i < 12 else "train"}
        for i, t in enumerate(texts)
    ]
    data = load("jailbreak", write_jsonl(tmp_path / "d.jsonl", rows), split_field="part", val=0.25)
    assert {e.text for e in data.test} == set(texts[:12])
    assert len(data.val) == 12 and len(data.train) == 36  # 25% of the 48 training rows
    assert all(e.split == "train" for e in data.train + data.val)
    assert_disjoint(data)


def test_predefined_split_with_custom_names(tmp_path):
    texts = sentences(30, 4)
    parts = ["fit"] * 20 + ["dev"] * 5 + ["holdout"] * 5
    rows = [
        {"text": t, "label": "benign" if i % 2 else "jailbreak", "s": p} for i, (t, p) in enumerate(zip(texts, parts))
    ]
    data = load(
        "jailbreak",
        write_jsonl(tmp_path / "d.jsonl", rows),
        split_field="s",
        train_split="fit",
        val_split="dev",
        test_split="holdout",
    )
    assert (len(data.train), len(data.val), len(data.test)) == (20, 5, 5)


@pytest.mark.parametrize("kwargs, missing", [({}, "test"), ({"val_split": "validation"}, "validation")])
def test_missing_split_value_is_an_error(tmp_path, kwargs, missing):
    rows = [{"text": t, "label": "benign", "split": "train" if i < 8 else "dev"} for i, t in enumerate(sentences(10))]
    with pytest.raises(RouterforgeError) as info:
        load("jailbreak", write_jsonl(tmp_path / "d.jsonl", rows), split_field="split", **kwargs)
    message = str(info.value)
    assert f"'{missing}'" in message and "'dev'" in message and "'split'" in message


def test_split_field_missing_in_a_row(tmp_path):
    rows = [{"text": "a b", "label": "benign", "split": "train"}, {"text": "c d", "label": "benign"}]
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    with pytest.raises(RouterforgeError, match=r"d\.jsonl:2: missing field 'split'"):
        load("jailbreak", path, split_field="split")


# ---------------------------------------------------------------------------------------------------- fractions, labels


@pytest.mark.parametrize("val, test", [(-0.1, 0.1), (0.1, 1.0), (0.5, 0.5), (1.2, 0.0), (0.6, 0.6)])
def test_fractions_validated(val, test):
    loaded = Loaded([Example(t, label="benign", source="x", row=i) for i, t in enumerate(sentences(10))], [])
    with pytest.raises(RouterforgeError, match="fractions"):
        make_splits(get_task("jailbreak"), loaded, val=val, test=test)


def test_zero_val_fraction_is_allowed(tmp_path):
    data = load("jailbreak", write_jsonl(tmp_path / "d.jsonl", jailbreak_rows(20)), val=0.0, test=0.25)
    assert data.val == [] and len(data.test) == 5 and len(data.train) == 15


def test_labels_without_test_support(tmp_path):
    texts = sentences(40, 9)
    rows = [
        {"question": t, "category": ("math", "law")[i % 2], "split": "test" if i < 10 else "train"}
        for i, t in enumerate(texts)
    ]
    rows.append({"question": "a lone history question about rome", "category": "history", "split": "train"})
    data = load("category", write_jsonl(tmp_path / "q.jsonl", rows), split_field="split")
    assert data.labels == MMLU_PRO_CATEGORIES
    assert data.report["labels_without_test_support"] == sorted(set(MMLU_PRO_CATEGORIES) - {"math", "law"})
    # labels taken from the data (label_field given): a label seen only in train stays in the set
    data = load(
        "category",
        write_jsonl(tmp_path / "q2.jsonl", rows),
        split_field="split",
        text_field="question",
        label_field="category",
    )
    assert data.labels == ("history", "law", "math")
    assert data.report["labels_without_test_support"] == ["history"]


def test_explicit_label_set(tmp_path):
    rows = [{"text": t, "label": ("yes", "no")[i % 2]} for i, t in enumerate(sentences(20))]
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    data = load("category", path, labels=["yes", "no", "maybe"])
    assert data.labels == ("yes", "no", "maybe") and "maybe" in data.report["labels_without_test_support"]
    with pytest.raises(RouterforgeError, match=r"d\.jsonl:2: label 'no'"):
        load("category", path, labels=["yes"])


# ---------------------------------------------------------------------------------------------------- manifest


def test_manifest_round_trip_and_hash_check(tmp_path):
    path = tmp_path / "d.jsonl"
    write_jsonl(path, jailbreak_rows(40))
    data = load("jailbreak", str(path), seed=3)
    manifest = json.loads(json.dumps(data.manifest()))  # it is stored as JSON
    assert manifest["fingerprint"] == data.fingerprint and manifest["sources"][0]["rows"] == 40
    for name in SPLITS:
        rows = load_split_from_manifest(manifest, name)
        assert [(e.key, e.text, e.label) for e in rows] == [(e.key, e.text, e.label) for e in data.split(name)]
    with pytest.raises(RouterforgeError, match="unknown split"):
        load_split_from_manifest(manifest, "dev")
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"text": "one more row", "label": "benign"}) + "\n")
    with pytest.raises(RouterforgeError) as info:
        load_split_from_manifest(manifest, "test")
    assert str(path) in str(info.value) and "changed" in str(info.value)
    path.unlink()
    with pytest.raises(RouterforgeError, match="no longer at this path"):
        load_split_from_manifest(manifest, "test")


def test_manifest_from_another_directory(tmp_path, monkeypatch):
    """Specs are stored as absolute paths, so the manifest works from any working directory."""
    (tmp_path / "data").mkdir()
    write_jsonl(tmp_path / "data" / "d.jsonl", jailbreak_rows(20))
    monkeypatch.chdir(tmp_path)
    data = load("jailbreak", "data/d.jsonl")
    monkeypatch.chdir(tmp_path / "data")
    assert [e.key for e in load_split_from_manifest(data.manifest(), "test")] == [e.key for e in data.test]


def test_manifest_finds_moved_data_by_name_and_hash(tmp_path, monkeypatch):
    """A model copied to another machine re-reads its splits from where ROUTERFORGE_DATA_DIRS says the data is."""
    old = tmp_path / "old" / "data" / "sets"
    old.mkdir(parents=True)
    write_jsonl(old / "d.jsonl", jailbreak_rows(40))
    data = load("jailbreak", str(old / "d.jsonl"), seed=3)
    manifest = json.loads(json.dumps(data.manifest()))
    new = tmp_path / "elsewhere"
    (new / "sets").mkdir(parents=True)
    (old / "d.jsonl").rename(new / "sets" / "d.jsonl")
    with pytest.raises(RouterforgeError, match="ROUTERFORGE_DATA_DIRS"):
        load_split_from_manifest(manifest, "test")
    monkeypatch.setenv("ROUTERFORGE_DATA_DIRS", f"{tmp_path / 'empty'}{os.pathsep}{new}")
    rows = load_split_from_manifest(manifest, "test")  # found as elsewhere/sets/d.jsonl, keys as recorded
    assert [(e.key, e.text, e.label) for e in rows] == [(e.key, e.text, e.label) for e in data.test]
    (new / "sets" / "d.jsonl").rename(new / "d.jsonl")  # found by its name alone too
    assert [e.key for e in load_split_from_manifest(manifest, "val")] == [e.key for e in data.val]
    write_jsonl(new / "d.jsonl", jailbreak_rows(41))  # the same name with other bytes is not the file
    with pytest.raises(RouterforgeError, match="no longer at this path"):
        load_split_from_manifest(manifest, "test")


def test_manifest_round_trip_pii_grouped(tmp_path):
    rows = [
        {
            "text": f"Call {name} today",
            "spans": [{"entity_type": "PERSON", "start": 5, "end": 5 + len(name)}],
            "template_id": i % 5,
        }
        for i, name in enumerate(w.split()[0] for w in sentences(30, 2))
    ]
    data = load("pii", write_jsonl(tmp_path / "pii.jsonl", rows), group_by="template_id")
    rows_back = load_split_from_manifest(data.manifest(), "test")
    assert [(e.key, e.spans, e.group) for e in rows_back] == [(e.key, e.spans, e.group) for e in data.test]


def test_deterministic_under_seed(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", jailbreak_rows(60))
    first, second = load("jailbreak", path, seed=11), load("jailbreak", path, seed=11)
    assert first.fingerprint == second.fingerprint
    assert all([e.key for e in first.split(s)] == [e.key for e in second.split(s)] for s in SPLITS)
    assert first.report == second.report
    assert load("jailbreak", path, seed=12).fingerprint != first.fingerprint


def test_val_row_close_to_a_moved_test_row_moves_too(tmp_path):
    """A test row that moves to train must not leave its near-copy in val."""
    rows = [{"text": t, "label": "benign", "split": "train"} for t in sentences(20, 8)]
    rows += [
        {"text": LONG_A, "label": "benign", "split": "val"},
        {"text": LONG_A_EDIT, "label": "benign", "split": "test"},
    ]
    rows += [{"text": t, "label": "benign", "split": "test"} for t in sentences(3, 9)]
    rows += [{"text": t, "label": "benign", "split": "val"} for t in sentences(2, 10)]
    data = load("jailbreak", write_jsonl(tmp_path / "d.jsonl", rows), split_field="split", val_split="val")
    assert {LONG_A, LONG_A_EDIT} <= {e.text for e in data.train}
    moved = data.report["near_duplicates_moved_to_train"]
    assert (moved["val"], moved["test"]) == (1, 1) and len(data.val) == 2 and len(data.test) == 3
