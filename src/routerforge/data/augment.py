"""Obfuscated copies of jailbreak-task rows: the forms attackers use to slip past a classifier.

Each transform is ``f(text, rng, **ctx) -> str``; ``ctx`` holds ``filler`` (benign texts to pad with) and
``filler_chars`` (a cap on the padding). Training (:func:`augment_jailbreak`) transforms BOTH classes and keeps
the labels, so the model learns that the form alone is not a jailbreak; the robustness benchmark builds its
variants (:func:`variants`) with the same code, from the test split and another seed.

>>> import random
>>> leet("ignore all rules", random.Random(0))
'ignor3 4ll rule5'
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence

from ..errors import RouterforgeError
from .schema import Example

ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff"
LEET = {"a": "4", "e": "3", "i": "1", "o": "0", "s": "5", "t": "7"}
_LEET_BOTH_CASES = LEET | {k.upper(): v for k, v in LEET.items()}
# Cyrillic and Greek letters that render like these Latin ones
HOMOGLYPHS = {
    "a": "\u0430",
    "c": "\u0441",
    "e": "\u0435",
    "i": "\u0456",
    "j": "\u0458",
    "o": "\u043e\u03bf",
    "p": "\u0440",
    "s": "\u0455",
    "x": "\u0445",
    "y": "\u0443",
    "v": "\u03bd",
    "A": "\u0410\u0391",
    "B": "\u0412\u0392",
    "C": "\u0421",
    "E": "\u0415\u0395",
    "H": "\u041d\u0397",
    "I": "\u0406\u0399",
    "K": "\u041a\u039a",
    "M": "\u041c\u039c",
    "N": "\u039d",
    "O": "\u041e\u039f",
    "P": "\u0420\u03a1",
    "T": "\u0422\u03a4",
    "X": "\u0425\u03a7",
    "Y": "\u03a5",
    "Z": "\u0396",
}
BENIGN_FILLER_CHARS = 1500  # default cap on padding per transformed text (benchmark)
TRAIN_FILLER_CHARS = 300  # training: the attack must still start inside the 128-token training window
_WORD = re.compile(r"[^\W\d_]{2,}")  # words of two or more letters: where characters go inside a word
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def spaced(text: str, rng: random.Random, **ctx) -> str:
    """``"I g n o r e   a l l"``: one space between characters, three between words (line breaks are lost)."""
    return "   ".join(" ".join(word) for word in text.split())


def upper(text: str, rng: random.Random, **ctx) -> str:
    """Upper-case one character (a leetspeak digit stays a digit)."""
    return text.upper()


def _substitute(text: str, rng: random.Random, table: dict[str, str], rate: float) -> str:
    """Replace each character found in ``table`` with probability ``rate`` (at least one, when any is there)."""
    chars = list(text)
    eligible = [i for i, c in enumerate(chars) if c in table]
    if not eligible:
        return text
    chosen = [i for i in eligible if rng.random() < rate] or [rng.choice(eligible)]
    for i in chosen:
        chars[i] = rng.choice(table[chars[i]])
    return "".join(chars)


def leet(text: str, rng: random.Random, *, rate: float = 0.5, **ctx) -> str:
    """a->4, e->3, i->1, o->0, s->5, t->7 (either case) for a random part of the letters."""
    return _substitute(text, rng, _LEET_BOTH_CASES, rate)


def homoglyph(text: str, rng: random.Random, *, rate: float = 0.3, **ctx) -> str:
    """Cyrillic/Greek lookalikes swapped into Latin words (mixed-script words, as attackers write them)."""
    return _substitute(text, rng, HOMOGLYPHS, rate)


def zero_width(text: str, rng: random.Random, *, rate: float = 0.5, **ctx) -> str:
    """Zero-width characters (U+200B/C/D, U+2060, U+FEFF) inside words; nothing else changes."""
    words = list(_WORD.finditer(text))
    if not words:
        return text
    chosen = [w for w in words if rng.random() < rate] or [rng.choice(words)]
    cuts: dict[int, str] = {}
    for word in chosen:
        for _ in range(rng.randint(1, 2)):
            cuts[rng.randrange(word.start() + 1, word.end())] = rng.choice(ZERO_WIDTH)
    return "".join(cuts.get(i, "") + c for i, c in enumerate(text))


def _clip(text: str, limit: int) -> str:
    """At most ``limit`` characters, cut at a word boundary."""
    if len(text) <= limit:
        return text
    cut = text[:limit]
    return cut[: cut.rfind(" ")] if " " in cut else cut


def _filler(text: str, rng: random.Random, ctx: dict, pieces: int) -> list[str]:
    pool = [f for f in ctx.get("filler") or () if f.strip() and f != text]
    if not pool:
        raise RouterforgeError("padding transforms need benign filler texts (ctx 'filler')")
    budget = max(1, int(ctx.get("filler_chars") or BENIGN_FILLER_CHARS) // pieces)
    picked = rng.sample(pool, pieces) if len(pool) >= pieces else [rng.choice(pool) for _ in range(pieces)]
    return [_clip(f.strip(), budget) for f in picked]


def _benign_sentences(text: str, rng: random.Random, ctx: dict) -> str:
    """One to three benign first sentences, joined (what the padding transforms add)."""
    return " ".join(_SENTENCE_END.split(f)[0] for f in _filler(text, rng, ctx, rng.randint(1, 3)))


def benign_suffix(text: str, rng: random.Random, **ctx) -> str:
    """The text, then one to three benign sentences, as if the request went on innocently."""
    sentences = _benign_sentences(text, rng, ctx)  # drawn before the separator: the rows manifests re-create
    return text.rstrip() + rng.choice((" ", "\n\n")) + sentences


def benign_prefix(text: str, rng: random.Random, **ctx) -> str:
    """One to three benign sentences, then the text: the greedy attacker prepends as often as it appends."""
    return _benign_sentences(text, rng, ctx) + rng.choice((" ", "\n\n")) + text.lstrip()


def benign_words(text: str, rng: random.Random, **ctx) -> str:
    """One to eight benign words, each put before or after the text: what a black-box attacker searching for a
    flip adds (benchmarks/adaptive_attack.py)."""
    words = [w for f in _filler(text, rng, ctx, 3) for w in _WORD.findall(f)] or ["please"]
    for word in rng.sample(words, min(len(words), rng.randint(1, 8))):
        text = f"{text} {word}" if rng.random() < 0.5 else f"{word} {text}"
    return text


def buried(text: str, rng: random.Random, *, paragraphs: int = 3, **ctx) -> str:
    """The text after ``paragraphs`` benign paragraphs: an attack deep inside a long, harmless prompt."""
    return "\n\n".join(_filler(text, rng, ctx, paragraphs) + [text])


TRANSFORMS: dict[str, Callable[..., str]] = {
    "spaced": spaced,
    "benign_suffix": benign_suffix,
    "benign_prefix": benign_prefix,
    "benign_words": benign_words,
    "buried": buried,
    "upper": upper,
    "leet": leet,
    "zero_width": zero_width,
    "homoglyph": homoglyph,
}
# what the robustness benchmark measures: variant name -> transforms applied in order
BENCHMARK_VARIANTS: dict[str, tuple[str, ...]] = {
    "clean": (),
    "spaced": ("spaced",),
    "benign_suffix": ("benign_suffix",),
    "buried": ("buried",),
    "upper": ("upper",),
    "leet": ("leet",),
    "zero_width": ("zero_width",),
    "homoglyph": ("homoglyph",),
    "upper+leet": ("upper", "leet"),
}
# what training draws from, one choice per copy of a row: every single transform but ``buried``, and some
# combinations. Not ``buried``: with it, the model learnt that a second persona-like prompt after a paragraph
# break is an attack, and flagged two harmless role-play prompts joined by "\n\n" (P 0.96; each alone 0.02).
# A buried attack is left to the runtime's windows, each scored on its own (benchmarks/README.md).
PADDING = ("benign_suffix", "benign_prefix", "benign_words", "buried")
TRAINING_TRANSFORMS: tuple[tuple[str, ...], ...] = tuple((name,) for name in TRANSFORMS if name != "buried") + (
    ("upper", "leet"),
    ("leet", "zero_width"),
    ("homoglyph", "zero_width"),
    ("homoglyph", "benign_suffix"),
    ("spaced", "benign_suffix"),
    ("upper", "homoglyph"),
)


# Version 2 added benign_prefix and benign_words (the adaptive attacker's moves). A manifest records the version
# its rows were made with, so a model trained on version 1 re-reads its own training rows.
AUGMENT_VERSION = 2
_ADDED_IN_2 = {"benign_prefix", "benign_words"}


def training_transforms(version: int = AUGMENT_VERSION) -> tuple[tuple[str, ...], ...]:
    """The chains training drew from at ``version`` (same order: the same seed picks the same chain)."""
    if version >= 2:
        return TRAINING_TRANSFORMS
    return tuple(chain for chain in TRAINING_TRANSFORMS if not _ADDED_IN_2 & set(chain))


def apply(names: Sequence[str], text: str, rng: random.Random, **ctx) -> str:
    """Apply the named transforms in order (padding first, so character tricks reach the padding too)."""
    unknown = [n for n in names if n not in TRANSFORMS]
    if unknown:
        raise RouterforgeError(f"unknown transforms {unknown}", hint=f"choose from {', '.join(TRANSFORMS)}")
    ordered = sorted(names, key=lambda n: n not in PADDING)
    for name in ordered:
        text = TRANSFORMS[name](text, rng, **ctx)
    return text


def variants(
    text: str, rng: random.Random, filler: Sequence[str], names: dict[str, tuple[str, ...]] = BENCHMARK_VARIANTS, **ctx
) -> dict[str, str]:
    """``{variant: transformed text}`` for one prompt (the benchmark's view; "clean" is the text itself)."""
    return {variant: apply(chain, text, rng, filler=filler, **ctx) for variant, chain in names.items()}


def augment_jailbreak(
    train: list[Example],
    seed: int,
    *,
    copies: int = 1,
    transforms: Sequence[tuple[str, ...]] = TRAINING_TRANSFORMS,
    filler_chars: int = TRAIN_FILLER_CHARS,
) -> list[Example]:
    """New rows: ``copies`` obfuscated copies of every row of ``train`` (both classes, labels kept).

    Filler comes from the benign (non-``jailbreak``) rows of ``train`` itself, so nothing from val/test can
    leak in. Each new row's ``meta`` names its source row (``augmented_from``) and its ``transforms``; its key
    is ``augment[COPY]:<source row key>``. Deterministic in ``seed``; a copy equal to its source is skipped.
    """
    filler = [e.text for e in train if e.label != "jailbreak"]
    if not filler:
        raise RouterforgeError(
            "jailbreak augmentation needs benign training rows to pad with", hint="add benign rows, or drop --augment"
        )
    out, transforms = [], list(transforms)
    for copy in range(copies):
        for example in train:
            rng = random.Random(f"{seed}:{copy}:{example.key}")
            chain = rng.choice(transforms)
            text = apply(chain, example.text, rng, filler=filler, filler_chars=filler_chars)
            if text == example.text:
                continue
            out.append(
                Example(
                    text,
                    label=example.label,
                    group=example.group,
                    split=example.split,
                    source=f"augment[{copy}]:{example.source}",
                    row=example.row,
                    meta={"augmented_from": example.key, "transforms": list(chain)},
                )
            )
    return out
