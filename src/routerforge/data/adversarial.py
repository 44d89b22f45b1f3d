"""Adversarial training rows: what a greedy black-box attacker makes of a first model's own training jailbreaks.

The attacker (:func:`greedy_padding`) appends or prepends benign words and sentences, a candidate at a time,
keeping whichever lowers ``p_jailbreak`` most; ``benchmarks/adaptive_attack.py`` scores a model with it on the
test split. Fixed padding transforms (:mod:`routerforge.data.augment`) do not teach a model to resist it: the
attacker finds the padding the model is weakest to. So the rows come from the model itself, in two runs:

1. ``routerforge adversarial MODEL --output rows.jsonl``: :func:`attack_rows` runs the search against MODEL's
   short training jailbreaks (:func:`training_targets`, re-read from its manifest), padding drawn from its benign
   training rows; every search's last text becomes a row labelled jailbreak that names its source row
   (``augmented_from``).
2. ``tasks.jailbreak.adversarial: rows.jsonl`` in the next run: :func:`read_rows` adds them to the training split
   after the split, refusing any row made from a row that is not in that training split (it would leak).
"""

from __future__ import annotations

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


def greedy_padding(router, text: str, pool: list[str], rng: random.Random, budget: int, per_step: int) -> dict:
    """Search up to ``budget`` queries, ``per_step`` candidates a step, for padding that un-flags ``text``.

    Returns ``flipped``, ``queries``, ``text`` (the candidate that flipped, or the best after the budget),
    ``words_added`` and ``p_jailbreak`` of that text.
    """
    current, queries = text, 0
    best_p = router.classify(text).jailbreak.p_jailbreak
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


def training_targets(router, train: list[Example], max_tokens: int = 128) -> tuple[list[Example], list[str]]:
    """The short jailbreaks of ``train`` to attack and the padding pool from its benign rows.

    Short = at most ``max_tokens`` tokens: the attacker flips short jailbreaks, which are rare in training, while
    padding is diluted in a long one. Only rows read from the data files count (not the obfuscated copies that
    ``augment`` adds).
    """
    own = [e for e in train if "augmented_from" not in e.meta]
    pool = padding_pool([e.text for e in own if e.label != "jailbreak"])
    if not pool:
        raise RouterforgeError("no benign training rows to pad with", hint="is this the model's jailbreak head?")
    targets = [e for e in own if e.label == "jailbreak" and len(router.tokenizer.encode(e.text).ids) <= max_tokens]
    return targets, pool


def attack_rows(
    router, target: Example, pool: list[str], *, variants: int = 3, queries: int = 60, per_step: int = 10, seed: int = 0
) -> list[dict]:
    """``variants`` searches of ``queries`` each against ``target``: one row per search, deterministic in
    ``seed``."""
    rows = []
    for variant in range(variants):
        rng = random.Random(f"{seed}:{variant}:{target.key}")
        found = greedy_padding(router, target.text, pool, rng, queries, per_step)
        rows.append({"augmented_from": target.key, "label": "jailbreak", "variant": variant} | found)
    return rows


def write_rows(rows: list[dict], path: Path) -> None:
    """The rows as JSONL (what ``tasks.jailbreak.adversarial`` reads)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


def read_rows(path: Path, train: list[Example], labels: tuple[str, ...]) -> list[Example]:
    """The file's rows as training examples; refused unless every one was made from a row of ``train``."""
    by_key = {e.key: e for e in train}
    out, foreign = [], []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            text, label, origin = row["text"], row["label"], row["augmented_from"]
            if not isinstance(text, str) or not text.strip():
                raise TypeError("text is not a non-empty string")
        except (ValueError, KeyError, TypeError) as err:
            raise RouterforgeError(
                f"not an adversarial row ({err})",
                source=f"{path}:{number}",
                hint="make the file with `routerforge adversarial MODEL --output FILE`",
            ) from None
        if label not in labels:
            raise RouterforgeError(f"label {label!r} is not one of {list(labels)}", source=f"{path}:{number}")
        if origin not in by_key:
            foreign.append(origin)
            continue
        source = by_key[origin]
        meta = {"augmented_from": origin, "transforms": ["adversarial"]}
        out.append(Example(text, label=label, group=source.group, split="train", source=SOURCE, row=number, meta=meta))
    if foreign:
        raise RouterforgeError(
            f"{len(foreign)} adversarial rows were made from rows outside this training split (first: {foreign[0]}); "
            "training on them would leak validation or test rows",
            source=str(path),
            hint="mine them from a model trained on the same data, seed and splits as this run",
        )
    return out
