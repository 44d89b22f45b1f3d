"""Examples as the rest of the library sees them, whatever file or hub set they came from."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Span:
    """A labelled character span: ``text[start:end]`` (Python offsets, end exclusive)."""

    entity_type: str
    start: int
    end: int


@dataclass
class Example:
    """One labelled row.

    Sequence tasks set ``label``; the token task (pii) sets ``spans``. ``source`` and ``row`` (1-based line or
    row number in that source) identify the row for error messages and split manifests.
    """

    text: str
    label: str | None = None
    spans: tuple[Span, ...] | None = None
    group: str | None = None
    split: str | None = None
    source: str = ""
    row: int = 0
    meta: dict = field(default_factory=dict)

    @property
    def key(self) -> str:
        """Stable row id for manifests: source file name and row number."""
        return f"{self.source}#{self.row}"
