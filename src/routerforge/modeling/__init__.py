"""Modeling: backbones (name -> Hugging Face checkpoint), heads, losses, and the multitask model (one
encoder, N heads).
"""

from __future__ import annotations

from ..lazy import lazy_exports

_LAZY = {
    "resolve_backbone": ("backbones", "resolve_backbone"),
    "MultitaskModel": ("multitask", "MultitaskModel"),
    "classification_loss": ("losses", "classification_loss"),
    "CrfTokenClassifier": ("heads", "CrfTokenClassifier"),
}
__all__ = sorted(_LAZY)
__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
