"""Signals of texts seen recently, so a conversation's history is not classified again on every turn.

A chat client resends the whole conversation each turn, and the guard reads every role: without a cache, turn
*n* classifies all *2n* earlier messages again. A text's signals are kept as its first classification by the
loaded generation (bundle, recognizers); a reload starts an empty cache. Keys are SHA-256 digests, not the
texts; the cached signals do hold the PII spans found (their text included) until evicted, so the cache is
bounded by entries and by an estimate of their bytes. A hit answers sooner than a miss: a client that can time
requests can tell whether a text it guesses was checked recently (docs/serving.md, "Signal cache"); ``size: 0``
turns it off.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

from ..runtime.signals import Signals

BYTES_PER_ENTRY = 4096  # the byte budget per entry of ``size``: a typical entry takes ~2.4 KB (measured)


def _key(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


def estimated_bytes(signals: Signals) -> int:
    """Rough memory of one entry: ~2.4 KB of signals (tracemalloc, the four-head bundle) plus each PII span's
    text and object; a text with many spans weighs more and leaves room for fewer entries."""
    return 2500 + sum(300 + len(span.text) for span in signals.pii or ())


class SignalCache:
    """A bounded least-recently-used map from text to its Signals: at most ``size`` entries and about
    ``size * BYTES_PER_ENTRY`` estimated bytes (event-loop thread only: no lock)."""

    def __init__(self, size: int):
        self.size, self.max_bytes = size, size * BYTES_PER_ENTRY
        self._entries: OrderedDict[bytes, tuple[Signals, int]] = OrderedDict()
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, text: str) -> Signals | None:
        """The cached signals of ``text``, marked as recently used; None when absent."""
        key = _key(text)
        found = self._entries.get(key)
        if found is None:
            return None
        self._entries.move_to_end(key)
        return found[0]

    def put(self, text: str, signals: Signals) -> None:
        """Remember ``signals`` for ``text``, evicting the least recently used beyond the bounds; an entry larger
        than the whole byte budget is not kept."""
        weight = estimated_bytes(signals)
        if weight > self.max_bytes:
            return
        key = _key(text)
        if (old := self._entries.pop(key, None)) is not None:
            self.bytes -= old[1]
        self._entries[key] = (signals, weight)
        self.bytes += weight
        while len(self._entries) > self.size or self.bytes > self.max_bytes:
            self.bytes -= self._entries.popitem(last=False)[1][1]
