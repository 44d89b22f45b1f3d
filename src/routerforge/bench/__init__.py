"""Benchmarks the CLI exposes (``routerforge bench ...``): measured side by side in one run, never in tests."""

from __future__ import annotations

_LAZY = {
    "latency_benchmark": ("latency", "latency_benchmark"),
    "format_table": ("latency", "format_table"),
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
