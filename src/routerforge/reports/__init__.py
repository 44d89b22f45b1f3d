"""Presenting results: evaluation reports, model cards and the run report, all rendered from recorded numbers
(nothing here trains or scores a model).
"""

from __future__ import annotations

from ..lazy import lazy_exports

_LAZY = {
    "write_evaluation": ("eval_report", "write_evaluation"),
    "write_report": ("eval_report", "write_report"),
    "write_model_card": ("model_card", "write_model_card"),
    "write_run_report": ("run_report", "write_run_report"),
}
__all__ = sorted(_LAZY)
__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
