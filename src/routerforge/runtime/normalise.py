"""Text normalisation before tokenisation, with a map from every normalised character back to the original.

One step, the same at training and inference (DESIGN.md). For now it is the identity; the robustness work
(NFKC, zero-width removal, homoglyph folding, spaced-out letters) fills it in. Whatever it does, PII spans
found in the normalised text are mapped back with :func:`to_original` so their offsets index the input.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Normalised:
    text: str
    original: str
    index: list[int] | None = None  # index[i]: position in ``original`` of normalised character i; None: identity

    def to_original(self, start: int, end: int) -> tuple[int, int]:
        """Map a normalised character span ``[start, end)`` to the smallest original span that covers it."""
        if self.index is None:
            return start, end
        return self.index[start], self.index[end - 1] + 1


def normalise(text: str) -> Normalised:
    return Normalised(text, text)
