"""``routerforge pipeline CONFIG.yaml``: every stage from one YAML, with resume (:mod:`.engine`)."""

from __future__ import annotations

from .engine import STAGES, Pipeline, run_pipeline, summary_tables

__all__ = ["STAGES", "Pipeline", "run_pipeline", "summary_tables"]
