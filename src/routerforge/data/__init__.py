"""Data: load labelled rows for a task, validate them, and split them without leakage.

>>> import routerforge as rf
>>> data = rf.data.load("jailbreak", "train.jsonl")
>>> len(data.train), len(data.val), len(data.test), data.labels
"""

from __future__ import annotations

import copy
from collections import Counter
from dataclasses import replace
from pathlib import Path

from ..errors import RouterforgeError
from ..tasks import get_task
from .located import located, moved_hint
from .schema import Example, Span
from .sources import URL_SCHEMES, SourceInfo, fetch, file_sha256, is_file_spec, load_examples, parse_synth
from .splits import SPLITS, TaskData, label_counts, make_splits, near_duplicates, normalise, row_hash

__all__ = ["Example", "Span", "TaskData", "load", "load_split_from_manifest", "task_data_from_manifest"]


def load(
    task: str,
    data: str | list[str],
    *,
    text_field: str | None = None,
    label_field: str | None = None,
    labels: list[str] | None = None,
    group_by: str | None = None,
    split_field: str | None = None,
    train_split: str = "train",
    val_split: str | None = None,
    test_split: str = "test",
    val: float = 0.1,
    test: float = 0.1,
    near_duplicate_threshold: float = 0.9,
    seed: int = 13,
    rules: str | None = None,
    augment_synth: int = 0,
    augment: bool = False,
    generate: dict | None = None,
    adversarial: str | None = None,
) -> TaskData:
    """Read ``data`` (paths, URLs, ``hf:`` or ``synth:N`` specs; :mod:`routerforge.data.sources`) for ``task`` and
    split it (see :mod:`routerforge.data.splits`). ``synth:N`` becomes ``synth:N:SEED`` with this ``seed``, so the
    manifest re-creates the same rows.

    ``labels``: the label set (default: the task's built-in labels, or, when ``label_field`` is given, the
    labels found in the data). ``rules``: a YAML intent rule table (default: the built-in one).
    ``augment_synth``: add this many rows from :mod:`routerforge.data.synth` to the training split only.
    ``augment`` (jailbreak only): add an obfuscated copy of each training row (:mod:`routerforge.data.augment`),
    to the training split only, after any synthetic rows.
    ``adversarial`` (jailbreak only): a JSONL file of rows an attacker made from an earlier model's training
    jailbreaks (:mod:`routerforge.data.adversarial`), to the training split only, after the obfuscated copies.
    ``generate`` (pii only): ``{rows, documents, templates, lower_case_ratio}``: rows from presidio-evaluator's
    sentence faker on the training split's templates only, and documents joined from them, to the training split
    only (:mod:`routerforge.data.pii_generator`).
    """
    task_def = get_task(task)
    if augment and task != "jailbreak":
        raise RouterforgeError(
            f"augment (obfuscated copies) is for the jailbreak task, not {task}",
            hint="drop --augment / 'augment: true' for this task",
        )
    if adversarial and task != "jailbreak":
        raise RouterforgeError(f"adversarial rows are for the jailbreak task, not {task}", hint="drop 'adversarial:'")
    if generate and task != "pii":
        raise RouterforgeError(f"generate (template rows) is for the pii task, not {task}", hint="drop 'generate:'")
    generate = _generate_options(generate)
    specs = [data] if isinstance(data, str) else list(data)
    specs = [_canonical(s, seed) for s in specs]
    rules = str(Path(rules).expanduser().resolve()) if rules else None
    options = dict(
        task=task,
        data=specs,
        text_field=text_field,
        label_field=label_field,
        labels=labels,
        group_by=group_by,
        split_field=split_field,
        train_split=train_split,
        val_split=val_split,
        test_split=test_split,
        val=val,
        test=test,
        near_duplicate_threshold=near_duplicate_threshold,
        seed=seed,
        rules=rules,
        augment_synth=augment_synth,
        augment=augment,
        generate=generate,
    )
    if augment:
        from .augment import AUGMENT_VERSION

        options["augment_version"] = AUGMENT_VERSION
    if adversarial:
        adversarial, digest = _input_file(
            adversarial, "no adversarial rows file here", "make it with `routerforge adversarial MODEL --output FILE`"
        )
        options |= {"adversarial": adversarial, "adversarial_sha256": digest}
    intent_rules = _intent_rules(rules)  # validates the file before it is hashed
    options["rules_sha256"] = file_sha256(Path(rules)) if rules else None
    loaded = load_examples(
        task_def,
        specs,
        text_field=text_field,
        label_field=label_field,
        group_by=group_by,
        split_field=split_field,
        intent_rules=intent_rules,
    )
    task_data = make_splits(
        task_def,
        loaded,
        labels=labels,
        labels_from_data=label_field is not None,
        val=val,
        test=test,
        seed=seed,
        grouped=group_by is not None,
        split_field=split_field,
        train_split=train_split,
        val_split=val_split,
        test_split=test_split,
        near_duplicate_threshold=near_duplicate_threshold,
        load_options=options,
    )
    if augment_synth:
        _augment_with_synth(task_data, augment_synth, seed, near_duplicate_threshold)
    if generate:
        _augment_with_generated(task_data, generate, seed, near_duplicate_threshold)
    if augment:
        _augment_with_obfuscation(task_data, seed)
    if adversarial:
        _augment_with_adversarial(task_data, adversarial, near_duplicate_threshold)
    return task_data


def _input_file(path: str, missing: str, hint: str) -> tuple[str, str]:
    """``path`` resolved (a manifest must find it from any working directory) and its sha256 (a manifest re-reads
    it only unchanged), refused when it is not a file."""
    resolved = Path(path).expanduser().resolve()
    if not resolved.is_file():
        raise RouterforgeError(missing, source=str(resolved), hint=hint)
    return str(resolved), file_sha256(resolved)


def _refuse_changed(files, message: str) -> list[str]:
    """Where each recorded file (``(path, sha256)`` pairs) is now (:func:`located`); refused when it is missing
    or changed since training, since the training rows re-created from it would differ."""
    paths = []
    for file, digest in files:
        path = located(file, digest)
        missing = not Path(path).is_file()
        if missing or file_sha256(Path(path)) != digest:
            raise RouterforgeError(message, source=file, hint=moved_hint() if missing else None)
        paths.append(path)
    return paths


def _generate_options(generate: dict | None) -> dict | None:
    """The generator's options with the template file resolved and hashed (the manifest re-creates the rows)."""
    if not generate:
        return None
    defaults: dict = {
        "rows": 0,
        "documents": 0,
        "templates": None,
        "lower_case_ratio": 0.05,
        "negatives": [],
        "negative_rows": 0,
        "context_rows": 0,
    }
    options: dict = defaults | dict(generate)
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise RouterforgeError(f"unknown generate options {unknown}", hint=f"known: {', '.join(defaults)}")
    if options["templates"]:
        options["templates"], options["templates_sha256"] = _input_file(
            options["templates"], "no template file here", "generate.templates: templates.txt"
        )
    if not options["context_rows"]:  # recorded only when used: manifests and pipeline stages made before it match
        del options["context_rows"]
    if options["negative_rows"] and not options["negatives"]:
        raise RouterforgeError("negative_rows needs negatives: files of PII-free texts", hint="generate.negatives")
    negatives = [_input_file(f, "no file of PII-free texts here", "generate.negatives") for f in options["negatives"]]
    options["negatives"] = [path for path, _ in negatives]
    options["negatives_sha256"] = [digest for _, digest in negatives]
    return options


def _located_generate_files(options: dict) -> dict:
    """The generator's options with its template and PII-free files where they are now; refused when one
    changed since training."""
    negatives = list(zip(options.get("negatives", []), options.get("negatives_sha256", [])))
    message = "a PII generator file is missing or changed since training"
    options = options | {"negatives": _refuse_changed(negatives, message)}
    if options.get("templates"):
        options["templates"] = _refuse_changed([(options["templates"], options["templates_sha256"])], message)[0]
    return options


def _generated_rows(train: list[Example], options: dict, seed: int, labels) -> list[Example]:
    """Rows and documents from the training rows' templates (the same for the same train rows and seed)."""
    from . import pii_generator

    templates = pii_generator.read_templates(options["templates"])
    ids = pii_generator.train_template_ids([e for e in train if not e.source.startswith("synth:")], len(templates))
    rows = pii_generator.generate(templates, ids, options["rows"], seed, labels, options["lower_case_ratio"])
    if options.get("context_rows"):  # the same templates with words beside the values that are not PII
        rows += pii_generator.context_rows(
            templates, ids, options["context_rows"], seed, labels, options["lower_case_ratio"]
        )
    negatives = pii_generator.negative_rows(options.get("negatives", []), options.get("negative_rows", 0), seed)
    return rows + negatives + pii_generator.documents(rows, options["documents"], seed, filler=negatives)


def validation_template_rows(manifest: dict, n: int) -> list[Example]:
    """``n`` generated rows from the **validation** templates of a PII model trained with ``generate``, for the
    export's parity check: its 100-odd validation rows give a paired interval too wide to judge int8 by, and
    rows from templates the model never trained on are what validation rows are. ``[]`` for a model without
    ``generate`` or without the ``pii-data`` extra."""
    from . import pii_generator

    options = manifest["load_options"].get("generate")
    if not options or n <= 0:
        return []
    val = [e for e in load_split_from_manifest(manifest, "val") if not e.source.startswith("synth:")]
    try:
        path = options["templates"] and located(options["templates"], options.get("templates_sha256"))
        templates = pii_generator.read_templates(path)  # None: presidio-evaluator's own list
        ids = pii_generator.train_template_ids(val, len(templates))
        return pii_generator.generate(templates, ids, n, manifest["load_options"]["seed"], manifest["labels"])
    except RouterforgeError:  # presidio-evaluator missing, or the template file moved
        return []


def _augment_with_generated(data: TaskData, options: dict, seed: int, threshold: float) -> None:
    """Generated rows after the split, from training templates only; near-copies of held-out rows dropped."""
    from . import pii_generator

    held_out = data.val + data.test
    generated = _generated_rows(data.train, options, seed, data.labels)
    near = near_duplicates(generated, held_out, threshold) if generated else []
    kept = [e for e, flag in zip(generated, near) if not flag]
    data.train = data.train + kept
    rows = [e for e in kept if e.group not in ("document", "negative")]
    docs = [e for e in kept if e.group == "document"]
    data.report["generated_train_rows"] = pii_generator.summary(rows, docs) | {
        "negative_rows": sum(e.group == "negative" for e in kept),
        "near_copies_dropped": sum(near),
    }
    _recount_train(data)


def _synth_rows(task: str, n: int, seed: int, labels) -> list[Example]:
    """The synthetic rows an augmented model was given; only rows whose labels are in the label set."""
    from .synth import generate

    allowed = set(labels)
    return [
        e
        for e in generate(task, n, seed=seed)
        if (e.label in allowed if e.spans is None else all(s.entity_type in allowed for s in e.spans))
    ]


def _new_train_rows(rows: list[Example], data: TaskData, threshold: float) -> tuple[list[Example], int, list[bool]]:
    """``rows`` minus those equal to a text of any split and near-copies of a held-out text: ``(kept, number of
    equal texts dropped, near-copy flag of each row that was not equal)``."""
    held_out = data.val + data.test
    seen = {normalise(e.text) for e in data.train + held_out}
    fresh = [e for e in rows if normalise(e.text) not in seen]
    near = near_duplicates(fresh, held_out, threshold)
    return [e for e, flag in zip(fresh, near) if not flag], len(rows) - len(fresh), near


def _augment_with_synth(data: TaskData, n: int, seed: int, threshold: float) -> None:
    """Train-only synthetic rows, added after the split so no copy reaches val/test; rows that equal or nearly
    copy a held-out text are dropped."""
    kept, _, near = _new_train_rows(_synth_rows(data.task.name, n, seed, data.labels), data, threshold)
    if not kept:
        raise RouterforgeError(f"no synthetic {data.task.name} rows fit this label set", hint="drop --augment-synth")
    data.train = data.train + kept
    data.report["synthetic_train_rows"] = {"requested": n, "added": len(kept), "near_copies_dropped": sum(near)}
    _recount_train(data)


def _augment_with_obfuscation(data: TaskData, seed: int) -> None:
    """Obfuscated copies of the training rows, added after the split (and synth) so they derive from train only."""
    from .augment import augment_jailbreak

    extra = augment_jailbreak(data.train, seed)
    data.train = data.train + extra
    data.report["augmented_train_rows"] = {
        "added": len(extra),
        "labels": dict(sorted(Counter(e.label for e in extra).items())),
        "transforms": dict(sorted(Counter("+".join(e.meta["transforms"]) for e in extra).items())),
    }
    _recount_train(data)


def with_adversarial(data: TaskData, path: str | Path) -> TaskData:
    """Jailbreak ``data`` as if loaded with ``adversarial=path``: the same split, the file's rows added to a copy of
    its training split (the bundle's rows under ``multitask.adversarial_from``; its per-task models keep ``data``)."""
    if data.task.name != "jailbreak":
        raise RouterforgeError(f"adversarial rows are for the jailbreak task, not {data.task.name}")
    if data.load_options.get("adversarial"):
        raise RouterforgeError("the jailbreak data has adversarial rows already", hint="name one file, not two")
    resolved, digest = _input_file(str(path), "no adversarial rows file here", "it is made before the bundle trains")
    out = replace(
        data,
        train=list(data.train),
        load_options=data.load_options | {"adversarial": resolved, "adversarial_sha256": digest},
        report=copy.deepcopy(data.report),
    )
    _augment_with_adversarial(out, resolved, data.load_options["near_duplicate_threshold"])
    return out


def _augment_with_adversarial(data: TaskData, path: str, threshold: float) -> None:
    """An attacker's rows from the training split's own rows, after the split (:mod:`.adversarial` checks them);
    copies of training or held-out texts and near-copies of held-out ones dropped."""
    from .adversarial import check_rows, held_out_digest, read_rows

    rows = read_rows(Path(path), data.labels)
    check_rows(rows, data.train, held_out_digest((e.key, row_hash(e)) for e in data.val + data.test), Path(path))
    kept, copies, near = _new_train_rows(rows, data, threshold)
    data.train = data.train + kept
    data.report["adversarial_train_rows"] = {
        "file": path,
        "added": len(kept),
        "sources": len({e.meta["augmented_from"] for e in kept}),
        "copies_dropped": copies,
        "near_copies_dropped": sum(near),
    }
    _recount_train(data)


def _recount_train(data: TaskData) -> None:
    """The report's training counts and the fingerprint after rows were added to the training split."""
    data.report["rows_per_split"]["train"] = len(data.train)
    data.report["labels_per_split"]["train"] = dict(sorted(label_counts(data.train).items()))
    data.report["fingerprint"] = data.fingerprint


def _canonical(spec: str, seed: int) -> str:
    """Absolute paths (the manifest must find the same files from any working directory); a seed in every
    ``synth:`` spec (the manifest must re-create the same rows)."""
    if spec.startswith("synth:"):
        n, own_seed = parse_synth(spec)
        return f"synth:{n}:{seed if own_seed is None else own_seed}"
    return str(Path(spec).expanduser().resolve()) if is_file_spec(spec) else spec


def _intent_rules(path: str | None):
    if not path:
        return None
    from .intents import load_rules

    return load_rules(path)


def load_split_from_manifest(manifest: dict, split: str = "test") -> list[Example]:
    """Re-read a model's own ``split`` rows from their sources, refusing if the data changed since training."""
    if split not in SPLITS:
        raise RouterforgeError(f"unknown split {split!r}", hint=f"choose one of {SPLITS}")
    return _rows_from_manifest(manifest, (split,))[split]


def task_data_from_manifest(manifest: dict, report: dict | None = None) -> TaskData:
    """Exactly the rows a split manifest names, re-read and hash-checked, as a :class:`TaskData` (the pipeline
    trains on a data stage recorded by an earlier run this way)."""
    rows = _rows_from_manifest(manifest, SPLITS)
    return TaskData(
        get_task(manifest["task"]),
        tuple(manifest["labels"]),
        rows["train"],
        rows["val"],
        rows["test"],
        [SourceInfo(**s) for s in manifest["sources"]],
        manifest["load_options"],
        dict(report or {}),
    )


def _rows_from_manifest(manifest: dict, splits: tuple[str, ...]) -> dict[str, list[Example]]:
    """``{split: rows}``, read once from the manifest's sources after checking their hashes."""
    sources = manifest["sources"]
    now = {}  # recorded path -> where the file is now (the rows keep the recorded path: their keys name it)
    for source in sources:
        path = source["path"]
        if path.startswith(("hf:", "synth:")):  # synthetic rows are checked row by row below
            continue
        now[path] = str(fetch(path)) if path.startswith(URL_SCHEMES) else located(path, source["sha256"])
        if not Path(now[path]).is_file():
            raise RouterforgeError(
                "the model's training data is no longer at this path",
                source=path,
                hint=f"run from the directory you trained in; {moved_hint()}; or pass --data FILE",
            )
        if file_sha256(Path(now[path])) != source["sha256"]:
            raise RouterforgeError(
                "data file changed since the model was trained (sha256 differs)",
                source=path,
                hint="restore the original file, or evaluate on it explicitly with --data",
            )
    options = manifest["load_options"]
    task_def = get_task(manifest["task"])
    rules = options.get("rules")
    if rules:
        message = "the intent rule table is missing or changed since the model was trained"
        rules = _refuse_changed([(rules, options.get("rules_sha256"))], message)[0]
    intent_rules = _intent_rules(rules)
    loaded = load_examples(
        task_def,
        [now.get(s["path"], s["path"]) for s in sources],
        text_field=options.get("text_field"),
        label_field=options.get("label_field"),
        group_by=options.get("group_by"),
        split_field=options.get("split_field"),
        intent_rules=intent_rules,
    )
    recorded = {path: old for old, path in now.items() if path != old}
    examples = [replace(e, source=recorded[e.source]) if e.source in recorded else e for e in loaded.examples]
    by_key = {e.key: e for e in examples}
    if options.get("augment_synth") and "train" in splits:
        by_key |= {
            e.key: e
            for e in _synth_rows(manifest["task"], options["augment_synth"], options["seed"], manifest["labels"])
        }
    if options.get("generate") and "train" in splits:  # regenerated from the file rows of train, as at training
        generate = _located_generate_files(options["generate"])
        base = [by_key[key] for key, _ in manifest["splits"]["train"] if key in by_key]
        by_key |= {e.key: e for e in _generated_rows(base, generate, options["seed"], manifest["labels"])}
    if options.get("augment") and "train" in splits:  # regenerated from the train rows, as at training time
        from .augment import augment_jailbreak, training_transforms

        base = [by_key[key] for key, _ in manifest["splits"]["train"] if key in by_key]
        transforms = training_transforms(options.get("augment_version", 1))
        by_key |= {e.key: e for e in augment_jailbreak(base, options["seed"], transforms=transforms)}
    if options.get("adversarial") and "train" in splits:  # the same file (checked when the model was trained)
        from .adversarial import read_rows

        path = _refuse_changed(
            [(options["adversarial"], options.get("adversarial_sha256"))],
            "the adversarial rows file is missing or changed since training",
        )[0]
        by_key |= {e.key: e for e in read_rows(Path(path), tuple(manifest["labels"]))}
    rows: dict[str, list[Example]] = {}
    for split in splits:
        rows[split] = []
        for key, digest in manifest["splits"][split]:
            example = by_key.get(key)
            if example is None or row_hash(example) != digest:
                raise RouterforgeError(
                    f"row {key} of the {split} split is missing or changed",
                    hint="the data or the loader rules changed since training",
                )
            rows[split].append(example)
    return rows
