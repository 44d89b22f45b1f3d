"""Token shapes: what an uncased tokenizer throws away ("Jordan" the name, "jordan" the word), kept as one small
id per token, read from the original characters through the offset map.

A model trained with ``shape_features`` adds a learned embedding of these ids to its input embeddings
(``modeling.shapes``), so the encoder sees case, digits and punctuation in context, in the same single pass.
The vocabulary is versioned (``SHAPES_VERSION`` in ``routerforge.json``): training and the runtime must agree.
"""

from __future__ import annotations

from collections.abc import Sequence

SHAPES_VERSION = "v1"
# id 0 is special tokens and padding (no characters); the embedding of id 0 stays zero.
SHAPES = ("none", "lower", "capitalised", "upper", "mixed", "digits", "alphanumeric", "punctuation", "other")
NONE, LOWER, CAPITALISED, UPPER, MIXED, DIGITS, ALPHANUMERIC, PUNCTUATION, OTHER = range(len(SHAPES))


def shape_of(piece: str) -> int:
    """The shape id of one token's characters."""
    if not piece:
        return NONE
    if piece.isalpha():
        if piece.islower():
            return LOWER
        if piece[0].isupper() and (len(piece) == 1 or piece[1:].islower()):
            return CAPITALISED  # an initial ("J") too
        if piece.isupper():
            return UPPER
        return MIXED if any(c.isupper() for c in piece) else LOWER  # scripts without case count as lower
    if piece.isdigit():
        return DIGITS
    if piece.isalnum():
        return ALPHANUMERIC
    if not any(c.isalnum() for c in piece):
        return PUNCTUATION
    return OTHER


def token_shapes(text: str, offsets: Sequence[tuple[int, int]]) -> list[int]:
    """One shape id per token; ``offsets`` index ``text`` (the normalised text the tokenizer read; its case
    is the original's). Special tokens, which have empty offsets, get ``NONE``."""
    return [shape_of(text[start:end]) if end > start else NONE for start, end in offsets]
