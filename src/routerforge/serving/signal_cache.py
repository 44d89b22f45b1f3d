"""Signals of texts seen recently, so a conversation's history is not classified again on every turn.

A chat client resends the whole conversation each turn, and the guard reads every role: without a cache, turn
*n* classifies all *2n* earlier messages again. The signals of a text are a function of the text and the loaded
generation (bundle, recognizers), so one generation's cache answers exactly what classifying again would; a
reload starts an empty one. Keys are SHA-256 digests, not the texts; the cached signals do hold the PII spans
found (their text included) until evicted. A hit answers sooner than a miss: a client that can time requests can
tell whether a text it guesses was checked recently (docs/serving.md, "Signal cache"); ``size: 0`` turns it off.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

from ..runtime.signals import Signals


def _key(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


class SignalCache:
    """A bounded least-recently-used map from text to its Signals (event-loop thread only: no lock)."""

    def __init__(self, size: int):
        self.size = size
        self._entries: OrderedDict[bytes, Signals] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, text: str) -> Signals | None:
        """The cached signals of ``text``, marked as recently used; None when absent."""
        key = _key(text)
        found = self._entries.get(key)
        if found is not None:
            self._entries.move_to_end(key)
        return found

    def put(self, text: str, signals: Signals) -> None:
        """Remember ``signals`` for ``text``, evicting the least recently used beyond ``size``."""
        if self.size <= 0:
            return
        key = _key(text)
        self._entries[key] = signals
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)
