"""Measuring: metrics with bootstrap intervals and calibration statistics (pure), and the drivers that score
or calibrate a model through the serving path (what is measured is what is served).

>>> from routerforge.evaluation import evaluate, calibrate
"""

from __future__ import annotations

from ..lazy import lazy_exports

_LAZY = {
    "evaluate": ("evaluator", "evaluate"),
    "evaluate_examples": ("evaluator", "evaluate_examples"),
    "headline": ("evaluator", "headline"),
    "calibrate": ("calibrator", "calibrate"),
    "calibrate_router": ("calibrator", "calibrate_router"),
    "classification_metrics": ("metrics", "classification_metrics"),
    "binary_detection_metrics": ("metrics", "binary_detection_metrics"),
    "span_metrics": ("metrics", "span_metrics"),
    "latency_summary": ("metrics", "latency_summary"),
    "expected_calibration_error": ("calibration", "expected_calibration_error"),
    "fit_temperature": ("calibration", "fit_temperature"),
    "threshold_at_fpr": ("calibration", "threshold_at_fpr"),
}
__all__ = sorted(_LAZY)
__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
