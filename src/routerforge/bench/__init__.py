"""Benchmarks the CLI exposes (``routerforge bench ...``): measured side by side in one run, never in tests."""

from __future__ import annotations

from ..lazy import lazy_exports

_LAZY = {
    "latency_benchmark": ("latency", "latency_benchmark"),
    "format_table": ("latency", "format_table"),
}
__all__ = sorted(_LAZY)
__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
