"""Read labelled rows from files or the Hugging Face hub and turn them into validated Examples.

Formats: JSONL, JSON (a list of objects, e.g. presidio-research's ``synth_dataset_v2.json``), CSV, Parquet,
``hf:ORG/NAME[:split]`` through ``datasets``, ``http(s)://`` / ``file://`` URLs of such files (downloaded once
into a cache, then read and hashed like a local file), and ``synth:N[:SEED]``: N rows of
:func:`routerforge.data.synth.generate` (offline, deterministic). Row shapes are recognised per task:

- sequence tasks: ``text_field``/``label_field`` (defaults: the first of text/question/prompt and
  label/category/type/intent present in the row);
- ``pii``: ``text`` + ``spans[{entity_type, start, end[, value]}]`` (this project's JSONL; a CSV's ``spans`` column
  holds the list as JSON) or presidio-research's original ``full_text`` +
  ``spans[{entity_type, entity_value, start_position, end_position}]``;
- ``intent``: Glaive tool-call rows (this project's JSONL, or the hub's raw ``system`` + ``chat`` rows of
  ``glaiveai/glaive-function-calling-v2``) and BFCL query rows get their label from the rule table in
  :mod:`routerforge.data.intents`; other rows are read like any sequence task.

Every problem raises :class:`RouterforgeError` naming the file and line.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import os
import re
import shutil
import tempfile
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import RouterforgeError
from ..tasks import Task
from .schema import Example, Span

CSV_FIELD_LIMIT = 1 << 30  # csv's default (128 KiB) refuses long documents, which the runtime windows
TEXT_FIELDS = ("text", "question", "prompt", "full_text")
LABEL_FIELDS = ("label", "category", "type", "intent")


@dataclass
class SourceInfo:
    """Where rows came from, so a manifest can tell later whether the data changed."""

    path: str
    sha256: str
    rows: int


@dataclass
class Loaded:
    """Rows read from one or more sources, with what the loader dropped and why."""

    examples: list[Example]
    sources: list[SourceInfo]
    dropped: Counter = field(default_factory=Counter)


URL_SCHEMES = ("http://", "https://", "file://")
_SYNTH = re.compile(r"synth:(\d+)(?::(-?\d+))?")


def is_file_spec(spec: str) -> bool:
    """A local path (resolved against data_dir), as opposed to ``hf:``, ``synth:`` or a URL."""
    return not spec.startswith(("hf:", "synth:", *URL_SCHEMES))


def parse_synth(spec: str) -> tuple[int, int | None]:
    """``synth:N[:SEED]`` -> ``(N, SEED or None)``."""
    match = _SYNTH.fullmatch(spec)
    if not match or int(match.group(1)) < 1:
        raise RouterforgeError(
            f"bad synthetic data spec {spec!r}",
            hint="write synth:N (N rows, the config's seed) or synth:N:SEED, N >= 1",
        )
    return int(match.group(1)), None if match.group(2) is None else int(match.group(2))


def cache_dir() -> Path:
    """Where downloaded data files live (``$ROUTERFORGE_CACHE`` or ``~/.cache/routerforge``)."""
    return Path(os.environ.get("ROUTERFORGE_CACHE") or Path.home() / ".cache" / "routerforge") / "downloads"


def fetch(url: str) -> Path:
    """The local copy of a data file at ``url``, downloaded on first use (keyed by the URL, kept under its own
    file name so the suffix still says the format). Manifests record the file's sha256, so a changed upstream
    file is noticed when the split is re-read."""
    name = Path(urllib.parse.urlparse(url).path).name or "data"
    target = cache_dir() / hashlib.sha256(url.encode()).hexdigest()[:16] / name
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310
            shutil.copyfileobj(response, out)
        os.replace(tmp, target)
    except OSError as err:  # URLError and HTTPError are OSErrors
        Path(tmp).unlink(missing_ok=True)
        raise RouterforgeError(
            f"could not download: {err}",
            source=url,
            hint="check the URL and the network, or download it and give the local path",
        ) from None
    return target


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes (manifests record it; a changed file is noticed)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_rows(spec: str) -> Iterator[tuple[int, object]]:
    """Yield ``(line_or_row_number, row)`` from a file or an ``hf:`` spec; rows are not yet validated."""
    if spec.startswith("hf:"):
        yield from _hub_rows(spec)
        return
    path = fetch(spec) if spec.startswith(URL_SCHEMES) else Path(spec)
    if not path.is_file():
        raise RouterforgeError("data file not found", source=spec, hint="check the path or --data-dir")
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        with open(path, "rb") as handle:  # bytes: a bad byte is reported with its line number
            for number, raw in enumerate(handle, 1):
                line = _decode(raw, spec, number)
                if line.strip():
                    yield number, _parse_json(line, spec, number)
    elif suffix == ".json":
        rows = _parse_json(_decode(path.read_bytes(), spec), spec)
        if not isinstance(rows, list):
            raise RouterforgeError("a .json data file must hold a list of rows", source=spec)
        yield from enumerate(rows, 1)
    elif suffix == ".csv":
        csv.field_size_limit(max(csv.field_size_limit(), CSV_FIELD_LIMIT))
        reader = csv.DictReader(io.StringIO(_decode(path.read_bytes(), spec), newline=""))
        try:
            for row in reader:
                yield reader.line_num, row
        except csv.Error as err:
            raise RouterforgeError(f"malformed CSV: {err}", source=spec, line=reader.line_num) from None
    elif suffix == ".parquet":
        import pandas as pd

        try:
            frame = pd.read_parquet(path)
        except (OSError, ValueError) as err:  # pyarrow's ArrowInvalid / ArrowIOError
            raise RouterforgeError(f"not a readable Parquet file: {err}", source=spec) from None
        for number, row in enumerate(frame.to_dict(orient="records"), 1):
            yield number, {key: _native(value) for key, value in row.items()}
    else:
        raise RouterforgeError(
            f"unsupported file type {suffix!r}",
            source=spec,
            hint="use .jsonl, .json, .csv, .parquet or hf:ORG/NAME[:split]",
        )


def _decode(raw: bytes, spec: str, line: int | None = None) -> str:
    """UTF-8 text without its BOM (Excel and Notepad write one); invalid bytes name their line."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise RouterforgeError(
            f"not valid UTF-8 (byte {raw[err.start]:#04x})",
            source=spec,
            line=line or raw.count(b"\n", 0, err.start) + 1,
            hint="save the file as UTF-8",
        ) from None


def _parse_json(text: str, spec: str, line: int | None = None):
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise RouterforgeError(f"malformed JSON: {err.msg}", source=spec, line=line or err.lineno) from None
    except (ValueError, RecursionError) as err:  # an integer too long to convert, nesting too deep to parse
        raise RouterforgeError(f"unreadable JSON: {err}", source=spec, line=line) from None


def short(value, limit: int = 60) -> str:
    """``repr`` of a user value, cut to ``limit`` characters: an error message must not quote a 1 MB field."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _native(value):
    """Parquet list columns come back as numpy arrays (also inside structs): turn them into lists."""
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)) and getattr(value, "ndim", 0) > 0:
        value = value.tolist()
    if isinstance(value, list):
        return [_native(v) for v in value]
    if isinstance(value, dict):
        return {k: _native(v) for k, v in value.items()}
    return value


def _hub_rows(spec: str) -> Iterator[tuple[int, object]]:
    """``hf:ORG/NAME[:split]`` through ``datasets`` (needs network or a local HF cache)."""
    name, _, split = spec[3:].partition(":")
    try:
        import datasets

        dataset = datasets.load_dataset(name, split=split or "train")
    except Exception as err:  # network, missing split, auth: all user-fixable
        raise RouterforgeError(
            f"could not load hub dataset: {err}",
            source=spec,
            hint="check the name and split, and that the hub is reachable",
        ) from None
    yield from enumerate(dataset, 1)


def source_info(spec: str, rows: int) -> SourceInfo:
    """What a manifest records of one source: its path or spec, rows and hash."""
    if spec.startswith("hf:"):
        return SourceInfo(spec, "hub:" + hashlib.sha256(spec.encode()).hexdigest(), rows)
    return SourceInfo(spec, file_sha256(fetch(spec) if spec.startswith(URL_SCHEMES) else Path(spec)), rows)


def _synth_examples(task: Task, spec: str) -> tuple[list[Example], SourceInfo]:
    """The rows of a ``synth:N:SEED`` spec, keyed by the spec (so two specs never share row ids), and a source
    record whose hash covers every row: a changed generator changes the fingerprint."""
    from .synth import generate

    n, seed = parse_synth(spec)
    if seed is None:
        raise RouterforgeError(f"{spec!r} names no seed here", hint="routerforge.data.load adds the run's seed")
    examples = [dataclasses.replace(e, source=spec) for e in generate(task.name, n, seed=seed)]
    digest = hashlib.sha256()
    for e in examples:
        spans = [[s.entity_type, s.start, s.end] for s in e.spans or ()]
        digest.update(json.dumps([e.text, e.label, spans]).encode() + b"\n")
    return examples, SourceInfo(spec, "synth:" + digest.hexdigest(), n)


def load_examples(
    task: Task,
    specs: list[str],
    *,
    text_field: str | None = None,
    label_field: str | None = None,
    group_by: str | None = None,
    split_field: str | None = None,
    intent_rules=None,
) -> Loaded:
    """Read and validate every source; labels are checked against the label set later (see ``splits``)."""
    if not specs:
        raise RouterforgeError(f"no data given for task {task.name!r}", hint="pass --data FILE (repeatable)")
    loaded = Loaded([], [])
    for spec in specs:
        if spec.startswith("synth:"):
            if split_field:
                raise RouterforgeError(
                    "synthetic rows have no predefined split",
                    source=spec,
                    hint="drop split_field, or the synth: source",
                )
            examples, info = _synth_examples(task, spec)
            loaded.examples += examples
            loaded.sources.append(info)
            continue
        count = 0
        for number, row in read_rows(spec):
            count += 1
            if not isinstance(row, dict):
                raise RouterforgeError(
                    f"malformed row: expected an object, got {type(row).__name__}", source=spec, line=number
                )
            example, reason = _to_example(task, row, spec, number, text_field, label_field, intent_rules)
            if example is None:
                loaded.dropped[reason] += 1
                continue
            if group_by:
                group = _field(row, group_by, spec, number, required=True, kind=None)
                # a list or object is a group id too, once hashable (splits put group ids in sets)
                example.group = json.dumps(group, sort_keys=True) if isinstance(group, (list, dict)) else group
            if split_field:
                example.split = str(_field(row, split_field, spec, number, required=True, kind=None))
            loaded.examples.append(example)
        loaded.sources.append(source_info(spec, count))
    if not loaded.examples:
        raise RouterforgeError(
            f"no usable rows for task {task.name!r} in {', '.join(specs)}",
            hint=f"dropped: {dict(loaded.dropped)}" if loaded.dropped else None,
        )
    return loaded


def _field(row: dict, name: str, spec: str, number: int, *, required: bool, kind: type | None = str):
    if name not in row or row[name] is None:
        if required:
            present = ", ".join(str(key)[:30] for key in list(row)[:10])
            raise RouterforgeError(f"missing field {name!r} (row has: {present})", source=spec, line=number)
        return None
    value = row[name]
    if kind is not None and not isinstance(value, kind):
        raise RouterforgeError(
            f"field {name!r} must be {kind.__name__}, got {type(value).__name__}", source=spec, line=number
        )
    return value


def _pick(row: dict, explicit: str | None, candidates: tuple[str, ...]) -> str:
    if explicit:
        return explicit
    return next((name for name in candidates if name in row), candidates[0])


def _text(row: dict, field_name: str, spec: str, number: int) -> str:
    text = _unicode(_field(row, field_name, spec, number, required=True), f"field {field_name!r}", spec, number)
    if not text.strip():
        raise RouterforgeError(f"empty text in field {field_name!r}", source=spec, line=number)
    return text


def _unicode(value: str, what: str, spec: str, number: int) -> str:
    """``value`` if it is valid Unicode. JSON's ``\\ud800`` escapes decode to lone surrogates, which no tokenizer
    (nor UTF-8) accepts: better refused here, naming the row, than a TypeError deep inside training."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        raise RouterforgeError(
            f"{what} holds a lone surrogate ({value[err.start]!r} at character {err.start}), "
            "which is not valid Unicode",
            source=spec,
            line=number,
        ) from None
    return value


def _to_example(task: Task, row: dict, spec: str, number: int, text_field, label_field, intent_rules):
    """One row -> (Example, None), or (None, drop reason) for rows a loader skips by rule."""
    if task.kind == "token":
        return _pii_example(row, spec, number, text_field), None
    if task.name == "intent" and not label_field and "chat" in row and "system" in row:
        from .intents import glaive_v2_row

        try:
            row = glaive_v2_row(row)  # the hub's raw glaive-function-calling-v2 rows
        except RouterforgeError as err:
            raise RouterforgeError(str(err), source=spec, line=number) from None
    if task.name == "intent" and not label_field and ("called_functions" in row or "ground_truth_functions" in row):
        from . import intents

        convert = intents.intent_from_glaive_row if "called_functions" in row else intents.intent_from_bfcl_row
        try:
            label, reason = convert(row, intent_rules)
        except RouterforgeError as err:
            raise RouterforgeError(str(err), source=spec, line=number) from None
        if label is None:
            return None, reason
        text = _text(row, text_field or "text", spec, number)
        return Example(text, label=label, source=spec, row=number), None
    text = _text(row, _pick(row, text_field, TEXT_FIELDS), spec, number)
    label = _field(row, _pick(row, label_field, LABEL_FIELDS), spec, number, required=True, kind=None)
    if isinstance(label, bool) or not isinstance(label, (str, int)):
        raise RouterforgeError(f"label must be a string, got {short(label)}", source=spec, line=number)
    return Example(text, label=_unicode(str(label), "the label", spec, number), source=spec, row=number), None


def _pii_example(row: dict, spec: str, number: int, text_field: str | None) -> Example:
    original = "full_text" in row and text_field is None
    text = _text(row, "full_text" if original else (text_field or "text"), spec, number)
    raw_spans = _field(row, "spans", spec, number, required=True, kind=None)
    if isinstance(raw_spans, str):  # a CSV cell holds the list as JSON
        try:
            raw_spans = json.loads(raw_spans)
        except (ValueError, RecursionError):
            pass
    if not isinstance(raw_spans, list):
        raise RouterforgeError(
            f"field 'spans' must be list (in a CSV: the list as JSON), got {type(raw_spans).__name__}",
            source=spec,
            line=number,
        )
    keys = (
        ("entity_type", "start_position", "end_position", "entity_value")
        if original
        else ("entity_type", "start", "end", "value")
    )
    spans = []
    for index, raw in enumerate(raw_spans):
        where = f"span {index}"
        if not isinstance(raw, dict):
            raise RouterforgeError(f"{where} is not an object", source=spec, line=number)
        entity, start, end = (raw.get(k) for k in keys[:3])
        if not isinstance(entity, str) or not entity:
            raise RouterforgeError(f"{where}: missing {keys[0]!r}", source=spec, line=number)
        _unicode(entity, f"{where}: {keys[0]!r}", spec, number)
        if not (isinstance(start, int) and isinstance(end, int)) or isinstance(start, bool) or isinstance(end, bool):
            raise RouterforgeError(f"{where}: {keys[1]!r} and {keys[2]!r} must be integers", source=spec, line=number)
        if not 0 <= start < end <= len(text):
            raise RouterforgeError(
                f"{where}: span [{start}, {end}) out of range for a text of {len(text)} characters",
                source=spec,
                line=number,
            )
        value = raw.get(keys[3])
        if value is not None and text[start:end] != value:
            raise RouterforgeError(
                f"{where}: text[{start}:{end}] is {short(text[start:end])}, not {short(value)}",
                source=spec,
                line=number,
                hint="offsets must be Python character offsets",
            )
        spans.append(Span(entity, start, end))
    spans.sort(key=lambda s: (s.start, s.end))
    for left, right in zip(spans, spans[1:]):
        if right.start < left.end:
            raise RouterforgeError(
                f"overlapping spans {left} and {right}",
                source=spec,
                line=number,
                hint="BIO labels cannot represent overlaps; keep one of them",
            )
    return Example(text, spans=tuple(spans), source=spec, row=number)
