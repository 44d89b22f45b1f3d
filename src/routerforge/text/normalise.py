"""Text normalisation before tokenisation, with a map from every normalised character back to the original.

One step, the same at training and inference, versioned: a model records the normaliser it was
trained with in ``routerforge.json`` (``"normalisation": "robust-v2"``) and :func:`normaliser_for` gives the
runtime that same one; a model without the key was trained on raw text and gets :func:`identity`.

``robust-v2`` (:func:`normalise`, what training writes now) undoes cheap obfuscation, in this order
(``robust-v1``, :func:`normalise_v1`, is steps 1-3 only, kept for the models trained with it):

1. per character: a lone surrogate becomes U+FFFD (no tokenizer can encode it); a Unicode tag character
   (U+E0020-U+E007E, invisible, but some models read it as the ASCII character it encodes: "ASCII
   smuggling") becomes that ASCII character; other invisible characters are dropped (every format
   character, category Cf: zero-width spaces and joiners, bidi controls, U+FEFF, the soft hyphen; and the
   Hangul fillers); control characters other than tab, newline and carriage return are
   dropped, except those Python counts as whitespace (vertical tab, form feed, U+001C-U+001F, U+0085), which
   become a space so the words either side stay apart; then NFKC *per character* (fullwidth letters,
   ligatures, mathematical alphanumerics: "𝐈𝐠𝐧𝐨𝐫𝐞" -> "Ignore"; one character may become up to 4, all
   mapped to it; the ~20 with longer forms stay as they are). Per character, so a decomposed "e" + U+0301
   stays two characters rather than composing: every normalised character has exactly one source character.
2. spaced-out letters joined: a run of single letters each followed by the same single separator (space,
   ``.``, ``-``, ``_``, ``*``) is joined when the run, or a neighbour in its phrase, has at least 4 letters
   that are not an alphabetical sequence ("A B C D" answer options, "a b c d" lists stay). A phrase is runs
   separated by a wider gap (2+ spaces or tabs for space-separated letters, 1+ otherwise), which becomes one
   space: "I g n o r e  a l l" -> "Ignore all", "U.S.S.R." -> "USSR.". Limits: a spaced word of 3 letters or
   fewer on its own ("s e x") stays, a separator used inconsistently ("I-g.n o") is not joined, and a lone
   "a" or "I" right before spaced letters joins them ("write a p o e m" -> "write apoem").
3. homoglyphs folded: Cyrillic, Greek and Armenian letters that look like Latin ones (:data:`HOMOGLYPHS`)
   become that Latin letter, but only in a word that also holds an ASCII Latin letter ("pаypаl" with
   Cyrillic а -> "paypal"), so genuine Russian or Greek text is untouched. Limit: a word made of lookalikes
   only ("ехес") stays.

4. leetspeak folded: in a word of ASCII letters and digits (:data:`LEET`) with at least two letters, where
   every digit is one of 0 1 3 4 5 7 and the digits are not just a number before or after the letters,
   each digit becomes the letter it stands for ("1gn0r3 4ll rul3s" -> "ignore 4ll rules", "7H1S" -> "THIS";
   upper case when the word's letters all are). One character for one, so offsets do not move. What stays:
   numbers ("555-0134", "1984"), a number then letters ("5km", "4ll", "1st"), letters then a number
   ("Win10", "user01", "mp3"), one-letter words ("7H3"), any word with a 2, 6, 8 or 9 ("A1B2", "x86").
   Limit: an ID such as "SW1A" becomes "SWIA"; its span is unchanged, and the PII head is trained on the
   same folded text.

Case is kept otherwise (an uncased tokenizer lowercases). Clean text takes a fast path (``index`` None).
PII spans found in the normalised text are mapped back with :meth:`Normalised.to_original`.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise

from ..errors import RouterforgeError

CURRENT = "robust-v2"  # what training writes into routerforge.json


@dataclass(frozen=True)
class Normalised:
    """A normalised text and the map from each of its characters to the original."""

    text: str
    original: str
    index: list[int] | None = None  # index[i]: position in ``original`` of normalised character i; None: identity

    def to_original(self, start: int, end: int) -> tuple[int, int]:
        """Map a normalised character span ``[start, end)`` to the smallest original span that covers it."""
        if self.index is None:
            return start, end
        return self.index[start], self.index[end - 1] + 1

    def to_normalised_span(self, start: int, end: int) -> tuple[int, int] | None:
        """The normalised span of the characters that come from original ``[start, end)`` (gold PII spans at
        training time); None when normalisation removed all of them."""
        if self.index is None:
            return start, end
        first, last = bisect_left(self.index, start), bisect_left(self.index, end)
        return (first, last) if first < last else None


def identity(text: str) -> Normalised:
    """The normaliser of models trained before normalisation existed: they saw raw text. Only lone surrogates
    (a JSON request can carry them; no tokenizer encodes them) become U+FFFD, one for one, so offsets hold."""
    return Normalised(text if text.isascii() else _SURROGATE.sub("\ufffd", text), text)


def normaliser_for(info: dict, override: str | None = None) -> Callable[[str], Normalised]:
    """The normaliser a model was trained with (``info["normalisation"]``; absent: identity), or ``override``."""
    name = override or info.get("normalisation") or "identity"
    if name not in NORMALISERS:
        raise RouterforgeError(
            f"unknown normalisation {name!r}",
            source="routerforge.json",
            hint=f"choose one of {', '.join(NORMALISERS)}, or upgrade routerforge",
        )
    return NORMALISERS[name]


# -- step 1: per character --------------------------------------------------------------------------------

_SURROGATE = re.compile("[\ud800-\udfff]")
_NOT_PLAIN = re.compile(r"[^\t\n\r\x20-\x7e]+")
MAX_EXPANSION = 4  # longer NFKC forms (Arabic ligature U+FDFA: 18 characters) stay: no 18x amplification
_INVISIBLE = frozenset("\u115f\u1160\u3164\uffa0")  # Hangul fillers: letters (Lo) that render as nothing


def _map_char(c: str) -> str:
    if "\ud800" <= c <= "\udfff":
        return "\ufffd"
    if "\U000e0020" <= c <= "\U000e007e":  # tag characters: invisible ASCII that some models read
        return chr(ord(c) - 0xE0000)
    category = unicodedata.category(c)
    if category == "Cc":
        return c if c in "\t\n\r" else " " if c.isspace() else ""
    if category == "Cf" or c in _INVISIBLE:
        return ""
    folded = unicodedata.normalize("NFKC", c)
    return folded if len(folded) <= MAX_EXPANSION else c


class _CharTable(dict):
    """``str.translate`` table for step 1, filled on first sight of each character (in C for the rest)."""

    LIMIT = 65_536  # an input holding every code point must not grow it without bound

    def __missing__(self, code: int) -> str:
        mapped = _map_char(chr(code))
        if len(self) < self.LIMIT:
            self[code] = mapped
        return mapped


_TABLE = _CharTable()


def _per_char(text: str) -> tuple[str, list[int] | None]:
    """Step 1 and its offset map; None when no character changed."""
    chars = text.translate(_TABLE)
    if chars == text:
        return text, None
    index: list[int] = []
    pos = 0
    for m in _NOT_PLAIN.finditer(text):  # printable ASCII maps to itself: only the rest is looked at
        index.extend(range(pos, m.start()))
        for i in range(m.start(), m.end()):
            index.extend([i] * len(_TABLE[ord(text[i])]))
        pos = m.end()
    index.extend(range(pos, len(text)))
    return chars, index


# -- step 2: spaced-out letters ---------------------------------------------------------------------------

_LETTER = r"(?<![^\W_])[^\W\d_](?![^\W_])"  # a letter with no letter or digit either side
_SPACED = re.compile(  # a phrase: runs of letters, each run with one separator, runs apart by a wider gap
    rf"{_LETTER}(?P<space> ){_LETTER}(?: {_LETTER})*(?:[ \t]{{2,}}{_LETTER}(?: {_LETTER})*)*"
    rf"|{_LETTER}(?P<mark>[.\-_*]){_LETTER}(?:(?P=mark){_LETTER})*(?:[ \t]+{_LETTER}(?:(?P=mark){_LETTER})*)*"
)
# the two inner letters of any run long enough to join: a cheap test that skips the search above in most text
_SPACED_HINT = re.compile(r"[ .\-_*][^\W\d_][ .\-_*][^\W\d_][ .\-_*]")
MIN_SPACED = 4


def _joined(phrase: str, sep: str) -> list[tuple[int, int]] | None:
    """The (start, end) of each run in ``phrase`` when it is to be joined, else None."""
    runs = [(m.start(), m.end()) for m in re.finditer(rf"\S(?:{re.escape(sep)}\S)*", phrase)]
    for start, end in runs:
        letters = phrase[start:end:2].lower()
        if len(letters) >= MIN_SPACED and any(ord(b) - ord(a) != 1 for a, b in pairwise(letters)):
            return runs
    return None


def _join_spaced(chars: str, index: list[int] | None) -> tuple[str, list[int] | None]:
    if not _SPACED_HINT.search(chars):
        return chars, index
    out: list[str] = []
    kept: list[int] = []
    pos = 0
    for m in _SPACED.finditer(chars):
        runs = _joined(m.group(), m.group("space") or m.group("mark"))
        if runs is None:
            continue
        if index is None:
            index = list(range(len(chars)))
        out.append(chars[pos : m.start()])
        kept.extend(index[pos : m.start()])
        for k, (start, end) in enumerate(runs):
            if k:  # the gap before this run becomes one space: its first character
                out.append(" ")
                kept.append(index[m.start() + runs[k - 1][1]])
            for j in range(m.start() + start, m.start() + end, 2):
                out.append(chars[j])
                kept.append(index[j])
        pos = m.end()
    if not out or index is None:  # index is set whenever a phrase was joined
        return chars, index
    out.append(chars[pos:])
    kept.extend(index[pos:])
    return "".join(out), kept


# -- step 3: homoglyphs -----------------------------------------------------------------------------------

HOMOGLYPHS = str.maketrans(
    {
        # Cyrillic
        "а": "a",
        "е": "e",
        "һ": "h",
        "і": "i",
        "ј": "j",
        "ӏ": "l",
        "о": "o",
        "р": "p",
        "ԛ": "q",
        "с": "c",
        "ѕ": "s",
        "ԁ": "d",
        "у": "y",
        "х": "x",
        "ԝ": "w",
        "А": "A",
        "В": "B",
        "Е": "E",
        "Н": "H",
        "І": "I",
        "Ј": "J",
        "К": "K",
        "М": "M",
        "О": "O",
        "Р": "P",
        "Ԛ": "Q",
        "С": "C",
        "Ѕ": "S",
        "Т": "T",
        "У": "Y",
        "Х": "X",
        "Ԝ": "W",
        "Ӏ": "I",
        # Greek
        "Α": "A",
        "Β": "B",
        "Ε": "E",
        "Ζ": "Z",
        "Η": "H",
        "Ι": "I",
        "Κ": "K",
        "Μ": "M",
        "Ν": "N",
        "Ο": "O",
        "Ρ": "P",
        "Τ": "T",
        "Υ": "Y",
        "Χ": "X",
        "α": "a",
        "ι": "i",
        "κ": "k",
        "ν": "v",
        "ο": "o",
        "ρ": "p",
        "υ": "u",
        # Armenian and Latin extensions
        "օ": "o",
        "ս": "u",
        "ց": "g",
        "ı": "i",
        "ɑ": "a",
        "ɡ": "g",
        "ʏ": "y",
    }
)
_LOOKALIKE_WORD = re.compile("(?<!\\w)\\w*[" + "".join(chr(c) for c in HOMOGLYPHS) + "]\\w*")
_ASCII_LETTER = re.compile("[A-Za-z]")


def _fold_homoglyphs(chars: str) -> str:
    def fold(m: re.Match) -> str:
        word = m.group()
        return word.translate(HOMOGLYPHS) if _ASCII_LETTER.search(word) else word

    if chars.isascii() or not _ASCII_LETTER.search(chars):
        return chars
    return _LOOKALIKE_WORD.sub(fold, chars)


# -- step 4: leetspeak -------------------------------------------------------------------------------------

LEET = {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t"}
_UNLEET = str.maketrans(LEET)
_UNLEET_UPPER = str.maketrans({d: c.upper() for d, c in LEET.items()})
_LEET_HINT = re.compile("[A-Za-z][013457]|[013457][A-Za-z]")  # linear: most text has no such pair
_ALNUM_WORD = re.compile("[A-Za-z0-9]+")
_NUMBER_AND_LETTERS = re.compile("[0-9]+[A-Za-z]+|[A-Za-z]+[0-9]+")


def _unleet_word(m: re.Match) -> str:
    word = m.group()
    letters = [c for c in word if c.isalpha()]
    digits = [c for c in word if c.isdigit()]
    if len(letters) < 2 or not digits or any(d not in LEET for d in digits) or _NUMBER_AND_LETTERS.fullmatch(word):
        return word
    return word.translate(_UNLEET_UPPER if all(c.isupper() for c in letters) else _UNLEET)


def _fold_leet(chars: str) -> str:
    if not _LEET_HINT.search(chars):
        return chars
    return _ALNUM_WORD.sub(_unleet_word, chars)


def _robust(text: str, *, leet: bool) -> Normalised:
    if (
        text.isascii()
        and not _NOT_PLAIN.search(text)
        and not _SPACED_HINT.search(text)
        and not (leet and _LEET_HINT.search(text))
    ):
        return Normalised(text, text)
    chars, index = _join_spaced(*_per_char(text))
    chars = _fold_homoglyphs(chars)
    if leet:
        chars = _fold_leet(chars)
    if chars == text:
        return Normalised(text, text)
    return Normalised(chars, text, index if index is not None else list(range(len(text))))  # only folded


def normalise(text: str) -> Normalised:
    """``robust-v2``: steps 1-4 of the module docstring, one pass each, composing the offset map."""
    return _robust(text, leet=True)


def normalise_v1(text: str) -> Normalised:
    """``robust-v1``: steps 1-3 (no leetspeak folding), for models trained with it."""
    return _robust(text, leet=False)


NORMALISERS: dict[str, Callable[[str], Normalised]] = {
    "identity": identity,
    "robust-v1": normalise_v1,
    CURRENT: normalise,
}
