"""The rows a routing evaluation may use: a category model's train and test splits, with question ids.

>>> split = split_rows("runs/routing/category")
>>> ids, texts, categories = split["test"]

Manifests identify rows by ``source#line``; the question id is read from that line of the source file, and the
line's text must equal the manifest's row (a changed file is an error, never a silent mis-join).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import RouterforgeError


def _source_rows(source: str, text_field: str) -> dict[int, dict]:
    rows = {}
    with open(source, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if line.strip():
                rows[number] = json.loads(line)
    return rows


def split_rows(model_dir: str | Path, splits: tuple[str, ...] = ("train", "test")) -> dict:
    """``{labels, text_field, <split>...}`` from a model's category manifest: each split as (question ids,
    texts, categories), question ids recovered from the manifest's ``source#line`` keys."""
    from ..bundle import head_data, heads_of, read_info
    from ..data import load_split_from_manifest
    from ..data.located import located

    info = read_info(model_dir)
    heads = heads_of(info)
    if "category" not in heads:
        raise RouterforgeError("the model has no category head", source=str(model_dir), hint="pass a category model")
    manifest = head_data(info, "category")["manifest"]
    text_field = manifest["load_options"].get("text_field") or "text"
    out = {"labels": list(heads["category"]["label_names"]), "text_field": text_field}
    sha256 = {source["path"]: source.get("sha256") for source in manifest["sources"]}
    cache: dict[str, dict[int, dict]] = {}
    for split in splits:
        ids, texts, cats = [], [], []
        for example in load_split_from_manifest(manifest, split):
            if example.source not in cache:  # read each source once
                cache[example.source] = _source_rows(located(example.source, sha256.get(example.source)), text_field)
            rows = cache[example.source]
            row = rows.get(example.row) or {}
            if row.get(text_field) != example.text or "question_id" not in row:
                raise RouterforgeError(
                    "cannot recover question_id for a manifest row (text differs or no question_id)",
                    source=example.source,
                    line=example.row,
                )
            ids.append(int(row["question_id"]))
            texts.append(example.text)
            cats.append(example.label)
        out[split] = (np.array(ids), texts, np.array(cats, dtype=object))
    return out
