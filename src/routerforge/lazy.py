"""Lazy package exports: ``import routerforge.x`` stays fast, heavy modules load when a name is first used.

>>> __getattr__, __dir__ = lazy_exports(__name__, {"Router": ("engine", "Router")})   # in a package __init__
"""

from __future__ import annotations

import importlib
from collections.abc import Callable


def lazy_exports(package: str, table: dict[str, tuple[str, str]]) -> tuple[Callable, Callable]:
    """The module-level ``__getattr__`` and ``__dir__`` (PEP 562) of ``package`` for ``{name: (module, attr)}``,
    ``module`` relative to the package."""
    namespace = importlib.import_module(package).__dict__

    def __getattr__(name: str):
        if name not in table:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, attribute = table[name]
        return getattr(importlib.import_module(f".{module}", package), attribute)

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(table))

    return __getattr__, __dir__
