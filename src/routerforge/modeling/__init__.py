"""Modeling: backbones (name -> Hugging Face checkpoint), heads, losses, and the multitask model (one
encoder, N heads).
"""

from __future__ import annotations

_LAZY = {
    "resolve_backbone": ("backbones", "resolve_backbone"),
    "MultitaskModel": ("multitask", "MultitaskModel"),
    "classification_loss": ("losses", "classification_loss"),
    "CrfTokenClassifier": ("heads", "CrfTokenClassifier"),
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
