"""``routerforge pipeline CONFIG.yaml``: every stage from one YAML, with skip and resume.

>>> from routerforge.pipeline import run_pipeline
>>> state = run_pipeline("configs/quickstart.yaml", runs_dir="runs")

:mod:`.engine` runs a table of stages (state, hashing, skip/resume); :mod:`.stages` is that table.
"""

from __future__ import annotations

from .engine import Engine, Item
from .stages import STAGES, Pipeline, run_pipeline

__all__ = ["STAGES", "Engine", "Item", "Pipeline", "run_pipeline"]
