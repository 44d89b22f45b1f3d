"""routerforge: train, evaluate, export and serve the classifiers behind an LLM semantic router.

>>> import routerforge as rf
>>> data = rf.data.load("category", "questions.jsonl", text_field="question", label_field="category")
>>> run = rf.train(data, model="minilm", output="models/category")
>>> metrics = rf.evaluate("models/category", output="reports/category")
>>> rf.Router.load("models/category").classify("What is the integral of x^2?").category.label
>>> state = rf.run_pipeline(rf.load_config("configs/quickstart.yaml"), runs_dir="runs")
"""

from __future__ import annotations

__version__ = "0.1.0"

from . import data
from .errors import RouterforgeError
from .lazy import lazy_exports

# public name -> (module, attribute); heavy parts (torch, transformers) load on first use
_LAZY = {
    "train": ("training.trainer", "train"),
    "train_multitask": ("training.multitask", "train_multitask"),
    "evaluate": ("evaluation.evaluator", "evaluate"),
    "export": ("exporters.exporter", "export"),
    "calibrate": ("evaluation.calibrator", "calibrate"),
    "run_pipeline": ("pipeline.stages", "run_pipeline"),
    "load_config": ("config", "load_config"),
    "LoraSettings": ("training.lora", "LoraSettings"),
    "Hyperparams": ("training.hyperparams", "Hyperparams"),
    "Router": ("runtime.engine", "Router"),
    "Signals": ("runtime.signals", "Signals"),
}
__all__ = ["RouterforgeError", "data", "__version__", *_LAZY]
__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
