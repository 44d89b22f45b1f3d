"""Training: per-task models and the multitask bundle through ``transformers.Trainer``, and the
config-driven entry point shared by ``routerforge train --config`` and the pipeline.

>>> from routerforge.training import train, train_multitask
"""

from __future__ import annotations

from ..lazy import lazy_exports

_LAZY = {
    "train": ("trainer", "train"),
    "TrainResult": ("trainer", "TrainResult"),
    "train_multitask": ("multitask", "train_multitask"),
    "Hyperparams": ("hyperparams", "Hyperparams"),
    "adaptive_hyperparams": ("hyperparams", "adaptive_hyperparams"),
    "LoraSettings": ("lora", "LoraSettings"),
}
__all__ = sorted(_LAZY)
__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
