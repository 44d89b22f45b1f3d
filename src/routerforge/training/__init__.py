"""Training: per-task models and the multitask bundle through ``transformers.Trainer``, and the
config-driven entry point shared by ``routerforge train --config`` and the pipeline.

>>> from routerforge.training import train, train_multitask
"""

from __future__ import annotations

_LAZY = {
    "train": ("trainer", "train"),
    "TrainResult": ("trainer", "TrainResult"),
    "train_multitask": ("multitask", "train_multitask"),
    "Hyperparams": ("hyperparams", "Hyperparams"),
    "adaptive_hyperparams": ("hyperparams", "adaptive_hyperparams"),
    "LoraSettings": ("lora", "LoraSettings"),
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
