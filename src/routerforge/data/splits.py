"""Leakage-free train/val/test splits, the split manifest, and the data report.

Order of work: exact dedup on normalised text (conflicting labels for one text: every copy dropped), then a
split (stratified by label, grouped by ``group_by``, or a predefined split column), then a near-duplicate check:
a val/test row whose TF-IDF cosine to a row on the training side reaches the threshold moves to train (with its
whole group), so no text is in two splits and no near-copy of a training text is scored.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

import numpy as np

from ..errors import RouterforgeError
from ..tasks import Task
from .schema import Example
from .sources import Loaded, SourceInfo, short

SPLITS = ("train", "val", "test")


@dataclass
class TaskData:
    """A task's examples split three ways, with what a model must remember to re-create the test split."""

    task: Task
    labels: tuple[str, ...]
    train: list[Example]
    val: list[Example]
    test: list[Example]
    sources: list[SourceInfo]
    load_options: dict
    report: dict = field(default_factory=dict)

    def split(self, name: str) -> list[Example]:
        """The examples of one split by name (train, val or test)."""
        return {"train": self.train, "val": self.val, "test": self.test}[name]

    @property
    def fingerprint(self) -> str:
        """A hash of every split's row hashes: the data identity a model records."""
        digest = hashlib.sha256()
        for name in SPLITS:
            for example in self.split(name):
                digest.update(f"{name}\t{example.key}\t{row_hash(example)}\n".encode())
        return digest.hexdigest()[:16]

    def manifest(self) -> dict:
        """Per split: row ids and row hashes (text + label); the sources with their hashes; how they were read."""
        return {
            "task": self.task.name,
            "labels": list(self.labels),
            "fingerprint": self.fingerprint,
            "load_options": self.load_options,
            "sources": [vars(s) for s in self.sources],
            "splits": {name: [[e.key, row_hash(e)] for e in self.split(name)] for name in SPLITS},
        }


def normalise(text: str) -> str:
    """The form used to find duplicates: NFKC, case-folded, whitespace collapsed."""
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text)).strip().casefold()


def text_hash(text: str) -> str:
    """The hash of a normalised text (duplicates and manifests key on it)."""
    return hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:12]


def row_hash(example: Example) -> str:
    """Hash of a row's text and its label (or spans): a manifest notices a relabelled row, not just new text."""
    target = json.dumps(_target(example), default=lambda span: [span.entity_type, span.start, span.end])
    return text_hash(example.text + "\x00" + target)


def _target(example: Example):
    return example.label if example.spans is None else example.spans


def dedup(examples: list[Example]) -> tuple[list[Example], int, int]:
    """Keep one row per normalised text; drop every copy of a text that carries conflicting labels.

    Returns (kept, duplicates_removed, conflicting_rows_dropped).
    """
    by_text: dict[str, list[Example]] = {}
    for example in examples:
        by_text.setdefault(normalise(example.text), []).append(example)
    kept, duplicates, conflicts = [], 0, 0
    for copies in by_text.values():
        if len({json.dumps(_target(e), default=str) for e in copies}) > 1:
            conflicts += len(copies)
            continue
        kept.append(copies[0])
        duplicates += len(copies) - 1
    return kept, duplicates, conflicts


def resolve_labels(task: Task, examples: list[Example], labels: list[str] | None, from_data: bool) -> tuple[str, ...]:
    """The label set: explicit, else the task's built-in one, else (custom label field) what the data holds.

    A label outside an explicit or built-in set is an error naming the row. For pii the label set is the
    entity types found in the data (every split), so a type seen in one template only stays in the set.
    """
    if task.kind == "token":
        found = sorted({s.entity_type for e in examples for s in e.spans or ()})
        allowed = labels or found
        label_of: Callable[[Example], list[str | None]] = lambda e: [s.entity_type for s in e.spans or ()]  # noqa: E731
    else:
        found = sorted(cast("set[str]", {e.label for e in examples}))  # the loaders set a label on every row
        allowed = labels or (found if from_data or task.labels is None else list(task.labels))
        label_of = lambda e: [e.label]  # noqa: E731
    allowed_set = set(allowed)
    for example in examples:
        for label in label_of(example):
            if label not in allowed_set:
                raise RouterforgeError(
                    f"label {short(label)} is not in the {task.name} label set {sorted(allowed_set)}",
                    source=example.source,
                    line=example.row,
                    hint="fix the row, or pass --labels / --label-field for a custom label set",
                )
    return tuple(allowed)


def _stratify_keys(examples: list[Example]) -> list[str] | None:
    if examples and examples[0].spans is None:
        counts = Counter(e.label for e in examples)
        # sklearn stratifies classes of >= 2 rows (so a class of 3 keeps a training row through both splits, even
        # after the test split left it 2); single rows share one stratum, or join the largest class when there is
        # only one of them (a one-row stratum makes sklearn refuse to stratify at all)
        rare = "__rare__" if sum(c == 1 for c in counts.values()) >= 2 else counts.most_common(1)[0][0]
        keys = [e.label if counts[e.label] >= 2 else rare for e in examples]
        return cast("list[str]", keys)  # sequence rows: the loaders set a label on every row
    return None


def _random_split(examples: list[Example], fraction: float, seed: int, grouped: bool, source: str):
    """Split off ``fraction`` of rows (or of groups), stratified by label where possible; ``source`` names the
    data files in errors."""
    from sklearn.model_selection import GroupShuffleSplit, train_test_split

    if fraction <= 0 or len(examples) < 2:
        return examples, []
    index = np.arange(len(examples))
    if grouped:
        groups = [e.group if e.group is not None else f"__row{i}" for i, e in enumerate(examples)]
        if np.asarray(groups).dtype == object:  # ints past int64 beside strings: sklearn cannot sort them
            groups = [str(g) for g in groups]  # (numpy makes any other mix text itself: those splits stay)
        if len(set(groups)) < 2:
            raise RouterforgeError("--group-by leaves a single group: cannot split by groups", source=source)
        keep, out = next(
            GroupShuffleSplit(n_splits=1, test_size=fraction, random_state=seed).split(index, groups=groups)
        )
    else:
        strata = _stratify_keys(examples)
        try:
            keep, out = train_test_split(index, test_size=fraction, random_state=seed, stratify=strata)
        except ValueError:  # too few rows per class for this fraction
            keep, out = train_test_split(index, test_size=fraction, random_state=seed)
    return [examples[i] for i in sorted(keep)], [examples[i] for i in sorted(out)]


def near_duplicates(candidates: list[Example], reference: list[Example], threshold: float) -> list[bool]:
    """For each candidate, whether its TF-IDF cosine (word 1-2 grams) to any reference row is >= threshold."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    if not candidates or not reference or threshold > 1:
        return [False] * len(candidates)
    vectoriser = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)
    try:
        vectoriser.fit([normalise(e.text) for e in reference + candidates])
    except ValueError:  # "empty vocabulary": no text has a word of two or more characters, so nothing to compare
        return [False] * len(candidates)
    ref = vectoriser.transform([normalise(e.text) for e in reference])
    cand = vectoriser.transform([normalise(e.text) for e in candidates])
    flags: list[bool] = []
    for start in range(0, cand.shape[0], 512):
        block = (cand[start : start + 512] @ ref.T).max(axis=1).toarray().ravel()
        flags.extend(bool(v >= threshold) for v in block)
    return flags


def _move_near_duplicates(train, held, threshold: float, grouped: bool):
    flags = near_duplicates(held, train, threshold)
    bad_groups = {e.group for e, f in zip(held, flags) if f and grouped and e.group is not None}
    moved = [e for e, f in zip(held, flags) if f or (grouped and e.group in bad_groups)]
    moved_ids = {id(e) for e in moved}
    return train + moved, [e for e in held if id(e) not in moved_ids], len(moved)


def make_splits(
    task: Task,
    loaded: Loaded,
    *,
    labels: list[str] | None = None,
    labels_from_data: bool = False,
    val: float = 0.1,
    test: float = 0.1,
    seed: int = 13,
    grouped: bool = False,
    split_field: str | None = None,
    train_split: str = "train",
    val_split: str | None = None,
    test_split: str = "test",
    near_duplicate_threshold: float = 0.9,
    load_options: dict | None = None,
) -> TaskData:
    """Dedup, split and check for near-duplicates; returns a :class:`TaskData` with its report."""
    if not (0 <= val < 1 and 0 <= test < 1 and val + test < 1):
        raise RouterforgeError(
            f"split fractions val={val}, test={test} must be in [0, 1) and sum below 1", source="splits"
        )
    files = ", ".join(s.path for s in loaded.sources)  # what errors about the data as a whole name
    examples, duplicates, conflicts = dedup(loaded.examples)
    label_set = resolve_labels(task, examples, labels, labels_from_data)
    unused: dict[str, int] = {}  # rows whose split value is none of train/val/test: left out, but counted
    if split_field:
        by_split: dict[str, list[Example]] = {}
        for example in examples:
            by_split.setdefault(cast(str, example.split), []).append(example)  # the loader set it from split_field
        missing = [s for s in (train_split, test_split, val_split) if s and s not in by_split]
        if missing:
            raise RouterforgeError(
                f"split column {split_field!r} has no rows for {missing}; it has {short(sorted(by_split), 200)}",
                source=files,
                hint="set --train-split/--val-split/--test-split to values present in the data",
            )
        unused = {
            name: len(rows) for name, rows in by_split.items() if name not in (train_split, val_split, test_split)
        }
        train_rows, test_rows = by_split[train_split], by_split[test_split]
        if val_split:
            val_rows = by_split[val_split]
        else:
            train_rows, val_rows = _random_split(train_rows, val, seed, grouped, files)
    else:
        rest, test_rows = _random_split(examples, test, seed, grouped, files)
        train_rows, val_rows = _random_split(rest, val / (1 - test) if test < 1 else 0, seed, grouped, files)
    # test first (against train and val), then val against train including the test rows just moved there
    train_rows, test_rows, moved_test = _move_near_duplicates(
        train_rows + val_rows, test_rows, near_duplicate_threshold, grouped
    )
    val_ids = {id(e) for e in val_rows}
    train_rows = [e for e in train_rows if id(e) not in val_ids]
    train_rows, val_rows, moved_val = _move_near_duplicates(train_rows, val_rows, near_duplicate_threshold, grouped)
    if not train_rows or not test_rows:
        raise RouterforgeError(
            f"split left train={len(train_rows)}, test={len(test_rows)} rows for {task.name}",
            source=files,
            hint="add data or change the split fractions",
        )
    data = TaskData(task, label_set, train_rows, val_rows, test_rows, loaded.sources, load_options or {})
    data.report = {
        "rows_read": sum(s.rows for s in loaded.sources),
        "rows_in_unused_splits": unused,
        "rows_dropped_by_loader": dict(loaded.dropped),
        "duplicates_removed": duplicates,
        "conflicting_label_rows_dropped": conflicts,
        "near_duplicates_moved_to_train": {"val": moved_val, "test": moved_test, "threshold": near_duplicate_threshold},
        "rows_per_split": {name: len(data.split(name)) for name in SPLITS},
        "labels_per_split": {name: dict(sorted(label_counts(data.split(name)).items())) for name in SPLITS},
        "labels_without_test_support": sorted(set(label_set) - set(label_counts(test_rows))),
        "fingerprint": data.fingerprint,
    }
    return data


def label_counts(examples: list[Example]) -> Counter:
    """Rows per label, or spans per entity type for the token task."""
    if examples and examples[0].spans is not None:
        return Counter(s.entity_type for e in examples for s in e.spans or ())
    return Counter(e.label for e in examples)
