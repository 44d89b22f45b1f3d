"""ONNX export of every head at once: ``(input_ids, attention_mask) -> one logits output per head``.

Uses PyTorch's TorchScript-based exporter (``dynamo=False``): its graphs are the ones ONNX Runtime's
transformer optimiser knows how to fuse (attention, layer norm, GELU). Batch and sequence axes are dynamic.
"""

from __future__ import annotations

import logging
import warnings
from contextlib import contextmanager
from pathlib import Path

OPSET = 17


@contextmanager
def quiet():
    """The exporter, optimiser and quantiser warn at length about things parity checks anyway."""
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(logging.NOTSET)


def example_inputs(vocab_size: int, batch: int = 2, length: int = 16, shapes: bool = False):
    """A small batch of token ids and mask (and token shapes) that exercises every dynamic axis."""
    import torch

    from ..text.shapes import SHAPES

    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(5, max(vocab_size, 6), (batch, length), generator=generator)
    mask = torch.ones_like(ids)
    mask[1, length // 2 :] = 0  # a padded row, so padding is traced too
    if not shapes:
        return ids, mask
    return ids, mask, torch.randint(0, len(SHAPES), (batch, length), generator=generator) * mask


def export_onnx(module, heads: dict[str, dict], vocab_size: int, file: Path, shapes: bool = False) -> None:
    """Trace ``module`` (see :class:`routerforge.modeling.multitask.HeadLogits`) into ``file``; ``shapes``: the
    model also reads ``shape_ids`` (shape features)."""
    import torch

    names = list(heads)
    inputs = ["input_ids", "attention_mask"] + (["shape_ids"] if shapes else [])
    axes = {name: {0: "batch", 1: "sequence"} for name in inputs}
    for name, spec in heads.items():
        axes[name] = {0: "batch", 1: "sequence"} if spec["kind"] == "token" else {0: "batch"}
    with torch.no_grad(), quiet():
        torch.onnx.export(
            module,
            example_inputs(vocab_size, shapes=shapes),
            str(file),
            input_names=inputs,
            output_names=names,
            dynamic_axes=axes,
            opset_version=OPSET,
            dynamo=False,
        )


def optimise(source: Path, target: Path, config: dict) -> dict:
    """ONNX Runtime's transformer optimiser (attention / skip-layer-norm / GELU fusion); returns the fused op
    counts. ``model_type="bert"`` covers BERT-family encoders; for others (ModernBERT) it fuses what it
    recognises (layer norms, GELU) and leaves the rest as is: the parity check decides if the result is right."""
    from onnxruntime.transformers.optimizer import optimize_model

    with quiet():
        model = optimize_model(
            str(source),
            model_type="bert",
            num_heads=config.get("num_attention_heads", 0),
            hidden_size=config.get("hidden_size", 0),
            opt_level=1,
        )
    model.save_model_to_file(str(target))
    return {op: n for op, n in model.get_fused_operator_statistics().items() if n}
