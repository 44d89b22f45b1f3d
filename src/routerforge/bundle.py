"""The model-directory format: what ``routerforge.json`` holds and the one place that reads and writes it.

>>> from routerforge.bundle import read_info, heads_of, head_data
>>> info = read_info("runs/quickstart/bundle")
>>> list(heads_of(info)), head_data(info, "pii")["manifest"]["splits"].keys()

A model directory is a Hugging Face directory (``config.json``, tokenizer, weights) plus ``routerforge.json``.
Two weight layouts exist: a per-task model (``AutoModelFor*Classification`` weights, ``kind`` = ``sequence`` or
``token``) and a multitask bundle (the encoder plus ``heads.safetensors``, ``kind`` = ``multitask``). Everything
that is not about weights reads the same for both through the accessors here: a per-task model is a one-head
bundle (``heads_of``, ``head_data``, ``head_metrics``), so no caller branches on the shape.

Files are validated on read (:class:`ModelInfo`): a missing or malformed field is one clear error naming the
file, not a ``KeyError`` deep in the runtime. Newer fields are kept as they are (``extra="allow"``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from .errors import RouterforgeError
from .io import write_json

INFO_FILE = "routerforge.json"
CARD_FILE = "README.md"  # the model card (Hugging Face convention)
SCHEMA_VERSION = 1
MULTITASK = "multitask"  # ``kind`` of a bundle: encoder + heads.safetensors


class Head(BaseModel):
    """One classifier head: its kind, the labels it predicts, and how they are decoded."""

    model_config = ConfigDict(extra="allow")
    kind: str  # "sequence" | "token"
    labels: list[str]
    label_names: list[str]  # the output units (BIO tags for a token head)
    crf: bool = False


class ModelInfo(BaseModel):
    """The typed shape of ``routerforge.json`` (the fields every reader relies on)."""

    model_config = ConfigDict(extra="allow")
    schema_version: int = SCHEMA_VERSION
    task: str  # the task of a per-task model; "multitask" for a bundle
    kind: str  # "sequence" | "token" | "multitask"
    labels: list[str] | None = None  # per-task models
    label_names: list[str] | None = None
    heads: dict[str, Head] | None = None  # bundles
    backbone: dict[str, Any] = {}
    max_length: int | None = None
    normalisation: str | None = None
    shape_features: str | None = None  # version of the token-shape vocabulary the model reads (text/shapes.py)
    data: dict[str, Any] = {}
    metrics: dict[str, Any] = {}
    calibration: dict[str, Any] = {}
    thresholds: dict[str, float] = {}
    exports: dict[str, Any] = {}
    pii_recognizers: dict[str, Any] | None = None  # runtime/recognizers.py RecognizerConfig
    pii_min_score: float | None = None  # model spans below it are dropped (chosen on validation)


def read_info(path: str | Path) -> dict:
    """``routerforge.json`` of a model directory, validated; a clear error when it is not one of ours."""
    info_path = Path(path) / INFO_FILE
    if not info_path.is_file():
        raise RouterforgeError(
            f"not a routerforge model directory (no {INFO_FILE})",
            source=str(path),
            hint="pass a directory written by 'routerforge train'",
        )
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise RouterforgeError(f"{INFO_FILE} is not valid JSON: {err.msg}", source=str(info_path)) from None
    try:
        parsed = ModelInfo.model_validate(info)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise RouterforgeError(f"{INFO_FILE}: {where}: {first['msg']}", source=str(info_path)) from None
    if parsed.schema_version > SCHEMA_VERSION:
        raise RouterforgeError(
            f"{INFO_FILE} has schema version {parsed.schema_version}; this routerforge reads up to {SCHEMA_VERSION}",
            source=str(info_path),
            hint="upgrade routerforge",
        )
    if parsed.heads is None and parsed.labels is None:
        raise RouterforgeError(f"{INFO_FILE} lists neither heads nor labels", source=str(info_path))
    return info


def write_info(directory: str | Path, info: dict) -> None:
    """Write ``routerforge.json`` atomically (the only writer of the file)."""
    write_json(Path(directory) / INFO_FILE, info)


def is_bundle(info: dict) -> bool:
    """A multitask bundle (encoder + ``heads.safetensors``) rather than a per-task model."""
    return info.get("kind") == MULTITASK or "heads" in info


def heads_of(info: dict) -> dict[str, dict]:
    """``{task: {kind, labels, label_names, crf}}``: a bundle's heads, or a per-task model's one head."""
    if is_bundle(info):
        return info["heads"]
    return {
        info["task"]: {
            "kind": info["kind"],
            "labels": info["labels"],
            "label_names": info["label_names"],
            "crf": info.get("crf", False),
        }
    }


def head_data(info: dict, task: str) -> dict:
    """``{manifest, report}`` of one head's data (a bundle keeps one per task)."""
    data = info.get("data") or {}
    return (data.get(task) or {}) if is_bundle(info) else data


def head_metrics(info: dict, task: str) -> dict:
    """The ``{val, test}`` metrics recorded for one head at training (or calibration) time."""
    metrics = info.get("metrics") or {}
    return (metrics.get(task) or {}) if is_bundle(info) else metrics


def with_metrics(info: dict, scores: dict[str, dict]) -> dict:
    """``info`` with ``scores`` (``{task: {val, test}}``) stored in the shape of its layout; a bundle keeps the
    recorded scores of heads not in ``scores`` (the model selector's, which calibration does not rescore)."""
    if not is_bundle(info):
        return info | {"metrics": next(iter(scores.values()))}
    kept = {task: m for task, m in (info.get("metrics") or {}).items() if task in info["heads"] and task not in scores}
    return info | {"metrics": kept | scores}


def pii_recognizers(info: dict) -> dict:
    """The model's recognizer settings (``pii_recognizers``: enabled, disabled, custom, min_score); {} when unset."""
    return dict(info.get("pii_recognizers") or {})


def pii_min_score(info: dict) -> float | None:
    """The minimum span score chosen on validation for the PII head (``pii_min_score``), if one was recorded."""
    value = info.get("pii_min_score")
    return None if value is None else float(value)


def shape_features(info: dict) -> bool:
    """Whether the model reads token shapes (``shape_features``); an unknown shape vocabulary is refused."""
    from .text.shapes import SHAPES_VERSION

    version = info.get("shape_features")
    if version not in (None, SHAPES_VERSION):
        raise RouterforgeError(
            f"{INFO_FILE}: unknown shape_features version {version!r} (this routerforge has {SHAPES_VERSION!r})",
            hint="upgrade routerforge",
        )
    return version is not None
