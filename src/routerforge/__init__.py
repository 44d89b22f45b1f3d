"""routerforge: train, evaluate, export and serve the classifiers behind an LLM semantic router.

>>> import routerforge as rf
>>> data = rf.data.load("category", "questions.jsonl", text_field="question", label_field="category")
>>> run = rf.train(data, model="minilm", output="models/category")
>>> report = rf.evaluate("models/category")
"""
from __future__ import annotations

__version__ = "0.1.0"

from . import data
from .errors import RouterforgeError

__all__ = ["RouterforgeError", "data", "train", "evaluate", "LoraSettings", "Hyperparams", "TaskModel", "__version__"]


def __getattr__(name: str):
    """Heavy parts (torch, transformers) load on first use, so ``import routerforge`` stays fast."""
    if name == "train":
        from .training.trainer import train

        return train
    if name == "evaluate":
        from .evaluation.evaluate import evaluate

        return evaluate
    if name == "LoraSettings":
        from .training.lora import LoraSettings

        return LoraSettings
    if name == "Hyperparams":
        from .training.hyperparams import Hyperparams

        return Hyperparams
    if name == "TaskModel":
        from .runtime.engine import TaskModel

        return TaskModel
    raise AttributeError(f"module 'routerforge' has no attribute {name!r}")
