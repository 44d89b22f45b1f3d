"""The router: YAML config, the pure routing policy (Signals -> Decision), and the servers built on them.

Nothing here imports torch or transformers, so serving an ONNX bundle stays light.

>>> from routerforge.serving import load_router_config, decide, texts_to_check
"""

from __future__ import annotations

from .config import BackendConfig, CategoryRoute, PiiPolicy, RouterConfig, ServerConfig, load_router_config
from .policy import Decision, TextKey, decide, texts_to_check

__all__ = [
    "BackendConfig",
    "CategoryRoute",
    "Decision",
    "PiiPolicy",
    "RouterConfig",
    "ServerConfig",
    "TextKey",
    "decide",
    "load_router_config",
    "texts_to_check",
]
