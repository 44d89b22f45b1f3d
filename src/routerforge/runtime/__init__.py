"""The runtime: one encoder pass for every head (:class:`Router`), its backends, long-input windows and the
micro-batcher. Serves ONNX without importing torch or transformers.

>>> from routerforge.runtime import Router
>>> Router.load("runs/quickstart/bundle").classify("Call John at 555-123-4567").pii
"""

from __future__ import annotations

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


def __getattr__(name: str):
    """Heavy parts load on first use: importing the package stays fast."""
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    module, attribute = _LAZY[name]
    return getattr(importlib.import_module(f".{module}", __name__), attribute)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
