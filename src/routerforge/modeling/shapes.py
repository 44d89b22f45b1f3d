"""Token-shape features (``shape_features``): a learned embedding of each token's case/digit/punctuation shape
(:mod:`routerforge.text.shapes`), added to the encoder's input embeddings.

Added at the input rather than concatenated before a head, so the encoder reads case in context ("Jordan" after
"met" vs at the start of a sentence) and every head of a bundle can use it, still in one pass. The embedding
starts at zero: before training the model is exactly the pretrained one. Saved as ``shapes.safetensors`` beside
the weights; ``routerforge.json`` records the shape vocabulary's version.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..text.shapes import SHAPES

SHAPES_FILE = "shapes.safetensors"


class ShapeEmbedding(nn.Module):
    """``shape_ids -> hidden`` vectors; id 0 (special tokens, padding) stays zero."""

    def __init__(self, hidden: int):
        super().__init__()
        self.embedding = nn.Embedding(len(SHAPES), hidden, padding_idx=0)
        nn.init.zeros_(self.embedding.weight)

    def forward(self, shape_ids: torch.Tensor) -> torch.Tensor:
        return self.embedding(shape_ids)

    def save(self, directory: Path) -> None:
        """Write ``shapes.safetensors`` into ``directory``."""
        from safetensors.torch import save_file

        save_file({"embedding.weight": self.embedding.weight.detach().contiguous()}, str(Path(directory) / SHAPES_FILE))

    def load(self, directory: Path) -> ShapeEmbedding:
        """Read the weights from ``directory``'s ``shapes.safetensors``."""
        from safetensors.torch import load_file

        self.load_state_dict(load_file(str(Path(directory) / SHAPES_FILE)))
        return self


def run_with_shapes(model, shapes: ShapeEmbedding | None, input_ids, attention_mask, shape_ids=None, **extra):
    """``model(...)`` on ``input_ids``, with the shape embedding of ``shape_ids`` added to the word embeddings it
    would look up (the one place a model reads shapes: per-task wrapper and bundle encoder alike)."""
    if shapes is None or shape_ids is None:
        return model(input_ids=input_ids, attention_mask=attention_mask, **extra)
    embeds = model.get_input_embeddings()(input_ids)
    embeds = embeds + shapes(shape_ids).to(embeds.dtype)
    return model(inputs_embeds=embeds, attention_mask=attention_mask, **extra)


class ShapeAware(nn.Module):
    """A Hugging Face per-task model (token or sequence classification) that also reads ``shape_ids``."""

    def __init__(self, model):
        super().__init__()
        self.model, self.config = model, model.config
        self.shapes = ShapeEmbedding(model.config.hidden_size)

    def gradient_checkpointing_enable(self, **kwargs):
        self.model.gradient_checkpointing_enable(**kwargs)

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, shape_ids=None):
        # named arguments: the Trainer keeps only dataset columns that forward() names
        extra = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
        return run_with_shapes(self.model, self.shapes, input_ids, attention_mask, shape_ids, **extra)

    def save_pretrained(self, directory, **kwargs) -> None:
        """The wrapped model as usual, the shape embedding in ``shapes.safetensors``."""
        self.model.save_pretrained(directory, **kwargs)
        self.shapes.save(Path(directory))

    @classmethod
    def load(cls, model, directory: Path) -> ShapeAware:
        """``model`` (loaded from ``directory``) wrapped, with the shape embedding saved beside it."""
        wrapped = cls(model)
        wrapped.shapes.load(directory)
        return wrapped.eval()
