"""The runtime: one encoder pass for every head (:class:`Router`), its backends, long-input windows and the
micro-batcher. Serves ONNX without importing torch or transformers.

>>> from routerforge.runtime import Router
>>> Router.load("runs/quickstart/bundle").classify("Call John at 555-123-4567").pii
"""

from __future__ import annotations

from ..lazy import lazy_exports

_LAZY = {
    "Router": ("engine", "Router"),
    "BACKENDS": ("engine", "BACKENDS"),
    "Signals": ("signals", "Signals"),
    "LabelSignal": ("signals", "LabelSignal"),
    "JailbreakSignal": ("signals", "JailbreakSignal"),
    "PiiSpan": ("signals", "PiiSpan"),
    "MicroBatcher": ("batcher", "MicroBatcher"),
    "QueueFull": ("batcher", "QueueFull"),
    "TooManyTexts": ("batcher", "TooManyTexts"),
    "plan_windows": ("windows", "plan_windows"),
}
__all__ = sorted(_LAZY)
__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
