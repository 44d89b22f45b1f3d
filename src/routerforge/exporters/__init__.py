"""Parity-checked exports (ONNX, int8 ONNX, TorchScript) written beside a model's weights (:mod:`.export`)."""

from __future__ import annotations

from .exporter import FILES, FORMATS, export
from .parity import ParityError

__all__ = ["FILES", "FORMATS", "ParityError", "export"]
