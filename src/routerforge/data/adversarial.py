"""Adversarial training rows: what a greedy black-box attacker makes of a first model's own training jailbreaks.

The attacker (:func:`greedy_padding`) appends or prepends benign words and sentences, a candidate at a time,
keeping whichever lowers ``p_jailbreak`` most; ``benchmarks/adaptive_attack.py`` scores a model with it on the
test split. Fixed padding transforms (:mod:`routerforge.data.augment`) do not teach a model to resist it: the
attacker finds the padding the model is weakest to. So the rows come from the model itself, in two runs:

1. ``routerforge adversarial MODEL --output rows.jsonl``: :func:`attack_rows` runs the search against MODEL's
   short training jailbreaks (:func:`training_targets`, re-read from its manifest), padding drawn from its benign
   training rows; every search's last text becomes a row labelled jailbreak that names its source row
   (``augmented_from``).
2. ``tasks.jailbreak.adversarial: rows.jsonl`` in the next run adds them to the training split after the split.
   :func:`check_rows` refuses them unless that run has the same validation and test rows (the padding came from
   the first run's training rows) and each was made from, and holds, a row of its training split.

``multitask.adversarial_from: MODEL`` does both in one run (:mod:`routerforge.training.adversarial`).
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

from ..errors import RouterforgeError
from .schema import Example

SOURCE = "adversarial"


def padding_pool(benign: list[str]) -> list[str]:
    """The benign sentences (3-25 words) and words (3+ letters, none with punctuation attached) an attacker tries,
    from ``benign`` texts."""
    sentences = [s.strip() + "." for text in benign for s in text.split(".") if 3 <= len(s.split()) <= 25]
    words = sorted({w for text in benign for w in text.split() if w.isalpha() and len(w) > 2})
    return sentences + words


def greedy_padding(
    router, text: str, pool: list[str], rng: random.Random, budget: int, per_step: int, p_start: float | None = None
) -> dict:
    """Search up to ``budget`` queries, ``per_step`` candidates a step, for padding that un-flags ``text``
    (``p_start``: its ``p_jailbreak`` when already known).

    Returns ``flipped``, ``queries``, ``text`` (the candidate that flipped, or the best after the budget),
    ``words_added`` and ``p_jailbreak`` of that text.
    """
    current, queries = text, 0
    best_p = router.classify(text).jailbreak.p_jailbreak if p_start is None else p_start
    while queries < budget:
        picks = rng.sample(pool, min(per_step, budget - queries, len(pool)))
        candidates = [current + " " + p if rng.random() < 0.5 else p + " " + current for p in picks]
        signals = router.classify_batch(candidates)
        for i, s in enumerate(signals):
            if not s.jailbreak.flagged:
                return _outcome(text, candidates[i], True, queries + i + 1, s.jailbreak.p_jailbreak)
        queries += len(candidates)
        i, p = min(enumerate(s.jailbreak.p_jailbreak for s in signals), key=lambda x: x[1])
        if p < best_p:
            current, best_p = candidates[i], p
    return _outcome(text, current, False, queries, best_p)


def _outcome(source: str, text: str, flipped: bool, queries: int, p: float) -> dict:
    added = len(text.split()) - len(source.split())
    return {"flipped": flipped, "queries": queries, "text": text, "words_added": added, "p_jailbreak": p}


def file_rows(examples: list[Example]) -> list[Example]:
    """The rows read from the data files: not the copies ``augment`` (or this module) derived from them."""
    return [e for e in examples if "augmented_from" not in e.meta]


def training_targets(router, train: list[Example], max_tokens: int = 128) -> tuple[list[Example], list[str]]:
    """The short jailbreaks of ``train`` to attack and the padding pool from its benign rows.

    Short = at most ``max_tokens`` tokens: the attacker flips short jailbreaks, which are rare in training, while
    padding is diluted in a long one. Only rows read from the data files count (not the obfuscated copies that
    ``augment`` adds).
    """
    own = file_rows(train)
    pool = padding_pool([e.text for e in own if e.label != "jailbreak"])
    if not pool:
        raise RouterforgeError("no benign training rows to pad with", hint="is this the model's jailbreak head?")
    targets = [e for e in own if e.label == "jailbreak" and len(router.tokenizer.encode(e.text).ids) <= max_tokens]
    return targets, pool


def held_out_digest(pairs) -> str:
    """A hash of the validation and test rows, as ``(key, row hash)`` pairs (a manifest lists them so). Rows made
    against one held-out set are refused by a run with another: their padding came from the first run's training
    rows, which may be the second run's held-out rows."""
    lines = sorted(f"{key}\t{digest}" for key, digest in pairs)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]


def attack_rows(
    router,
    target: Example,
    pool: list[str],
    held_out: str,
    *,
    variants: int = 3,
    queries: int = 60,
    per_step: int = 10,
    seed: int = 0,
) -> list[dict]:
    """``variants`` searches of ``queries`` each against ``target``: one row per search that found a new text,
    deterministic in ``seed``. Each row records the ``held_out`` digest and whether the model flagged the target
    before (``flagged_before``; a target it misses "flips" at the first query)."""
    start = router.classify(target.text).jailbreak
    rows, seen = [], {target.text}
    for variant in range(variants):
        rng = random.Random(f"{seed}:{variant}:{target.key}")
        found = greedy_padding(router, target.text, pool, rng, queries, per_step, start.p_jailbreak)
        if found["text"] in seen:
            continue
        seen.add(found["text"])
        origin = {"augmented_from": target.key, "label": "jailbreak", "variant": variant}
        rows.append(origin | found | {"flagged_before": start.flagged, "held_out_sha256": held_out})
    return rows


def write_rows(rows: list[dict], path: Path) -> None:
    """The rows as JSONL (what ``tasks.jailbreak.adversarial`` reads)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


def read_rows(path: Path, labels: tuple[str, ...]) -> list[Example]:
    """The file's rows as training examples (format checks only; :func:`check_rows` decides whether a run may
    train on them)."""
    out = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            text, label, origin = row["text"], row["label"], row["augmented_from"]
            if not all(isinstance(v, str) and v.strip() for v in (text, label, origin)):
                raise TypeError("text, label and augmented_from must be non-empty strings")
        except (ValueError, KeyError, TypeError) as err:
            raise RouterforgeError(
                f"not an adversarial row ({err})",
                source=f"{path}:{number}",
                hint="make the file with `routerforge adversarial MODEL --output FILE`",
            ) from None
        if label not in labels:
            raise RouterforgeError(f"label {label!r} is not one of {list(labels)}", source=f"{path}:{number}")
        meta = {"augmented_from": origin, "transforms": ["adversarial"], "held_out_sha256": row.get("held_out_sha256")}
        out.append(Example(text, label=label, split="train", source=SOURCE, row=number, meta=meta))
    return out


def check_rows(rows: list[Example], train: list[Example], held_out: str, path: Path) -> None:
    """Refuse rows this run must not train on: made against other validation/test rows than this run's (their
    padding may hold them), made from a row outside this training split, or not holding their source row's text."""
    by_key = {e.key: e for e in train}
    hint = "make them with `routerforge adversarial` from a model trained on the same data, seed and splits"
    for row in rows:
        where, origin = f"{path}:{row.row}", row.meta["augmented_from"]
        if row.meta["held_out_sha256"] != held_out:
            raise RouterforgeError(
                "adversarial row made against other validation/test rows than this run's: its padding may hold "
                "this run's held-out rows",
                source=where,
                hint=hint,
            )
        if origin not in by_key:
            raise RouterforgeError(
                f"adversarial row made from {origin}, which is not in this training split", source=where, hint=hint
            )
        if by_key[origin].text not in row.text:
            raise RouterforgeError(f"adversarial row does not hold the text of its source {origin}", source=where)
