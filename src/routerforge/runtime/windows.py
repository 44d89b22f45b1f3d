"""Long input without silent truncation: overlapping token windows, and how their answers are merged.

A text is tokenised once; its content tokens are cut into windows of ``size`` content tokens that overlap by
``overlap``. Each token is *owned* by exactly one window: the boundary between two neighbours is the middle of
their overlap, so every owned token has at least ``overlap // 2`` tokens of context on each side (except at the
text's ends). PII tags are taken from the owning window only, then decoded once over the whole text: a span cut
by one window's edge is read whole from its neighbour, and no span is reported twice.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import RouterforgeError


@dataclass(frozen=True)
class Window:
    """One window of a long text: the tokens it reads, and the part of them whose predictions it owns."""

    start: int  # content-token range the window reads
    end: int
    own_start: int  # content-token range whose token predictions come from this window
    own_end: int


def plan_windows(n_tokens: int, size: int, overlap: int, max_windows: int) -> tuple[list[Window], bool]:
    """Windows over ``n_tokens`` content tokens, and whether the cap cut the text short."""
    if size < 1 or not 0 <= overlap < size or max_windows < 1:
        raise RouterforgeError(
            f"bad window settings: size={size}, overlap={overlap}, max_windows={max_windows}",
            hint="need size >= 1, 0 <= overlap < size, max_windows >= 1",
        )
    step = size - overlap
    starts = list(range(0, max(n_tokens - overlap, 1), step)) or [0]
    truncated = len(starts) > max_windows
    starts = starts[:max_windows]
    ends = [min(s + size, n_tokens) for s in starts]
    bounds = [(ends[i] + starts[i + 1]) // 2 for i in range(len(starts) - 1)]
    own = [0] + bounds, bounds + [ends[-1]]
    return [Window(s, e, a, b) for s, e, a, b in zip(starts, ends, *own)], truncated


def merge_token_rows(windows: list[Window], rows: list[np.ndarray]) -> np.ndarray:
    """Concatenate each window's owned rows (per-token probabilities or tags) into one row per content token."""
    parts = [row[w.own_start - w.start : w.own_end - w.start] for w, row in zip(windows, rows)]
    return np.concatenate(parts) if parts else np.zeros((0,))
