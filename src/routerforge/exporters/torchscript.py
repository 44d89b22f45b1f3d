"""TorchScript export (``torch.jit.trace``) for PyTorch-only deployments; parity-checked like the others."""

from __future__ import annotations

from pathlib import Path

from .onnx import example_inputs, quiet


def export_torchscript(module, vocab_size: int, file: Path, shapes: bool = False) -> None:
    """Trace the head-logits module to TorchScript at ``path`` (``shapes``: it also reads ``shape_ids``)."""
    import torch

    with torch.no_grad(), quiet():
        traced = torch.jit.trace(module, example_inputs(vocab_size, shapes=shapes), strict=False, check_trace=False)
    traced.save(str(file))
