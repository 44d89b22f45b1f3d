"""One encoder, N task heads, one forward pass: the reference architecture of a semantic router.

Sequence tasks (category, jailbreak, intent) read a mean-pooled sentence vector through a small MLP head;
the token task (pii) reads every token's hidden state through a linear head, optionally followed by a CRF; a
multi-label head (the model selector: one sigmoid per pool model) is one linear layer over the pooled vector.
At inference one encoder pass feeds every head; in training each batch comes from one task and only that
task's head runs (``task_id``).

On disk a bundle is the encoder as a normal Hugging Face model (``config.json`` + ``model.safetensors``,
loadable by ``AutoModel``), the heads in ``heads.safetensors``, and ``routerforge.json`` listing the heads.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .shapes import ShapeEmbedding, run_with_shapes

HEADS_FILE = "heads.safetensors"


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average of the token vectors the mask keeps (the pooling MiniLM-style sentence encoders are trained with)."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


class SequenceHead(nn.Module):
    """A text classifier over the mean-pooled encoder output."""

    def __init__(self, hidden: int, num_labels: int, dropout: float = 0.1):
        super().__init__()
        self.dense, self.dropout, self.out = (
            nn.Linear(hidden, hidden),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_labels),
        )

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        pooled = self.dropout(mean_pool(hidden, attention_mask))
        return self.out(self.dropout(nn.functional.gelu(self.dense(pooled))))


class TokenHead(nn.Module):
    """A per-token classifier (BIO tags), optionally with a CRF."""

    def __init__(self, hidden: int, num_labels: int, dropout: float = 0.1, crf: bool = False):
        super().__init__()
        self.dropout, self.out = nn.Dropout(dropout), nn.Linear(hidden, num_labels)
        if crf:
            from torchcrf import CRF

            self.crf = CRF(num_labels, batch_first=True)

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.out(self.dropout(hidden))


class MultilabelHead(nn.Module):
    """Independent sigmoid logits over the mean-pooled encoder output (``kind: multilabel``): the per-request
    model selector, P(correct) for each pool model. Linear, so a logistic regression fitted on the pooled
    vectors (training/selector.py) is exactly this layer."""

    def __init__(self, hidden: int, num_labels: int):
        super().__init__()
        self.out = nn.Linear(hidden, num_labels)

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.out(mean_pool(hidden, attention_mask))


def make_head(hidden: int, spec: dict) -> nn.Module:
    """The head module of a ``{"kind", "num_labels", "crf"}`` spec."""
    if spec["kind"] == "token":
        return TokenHead(hidden, spec["num_labels"], crf=spec.get("crf", False))
    if spec["kind"] == "multilabel":
        return MultilabelHead(hidden, spec["num_labels"])
    return SequenceHead(hidden, spec["num_labels"])


class MultitaskModel(nn.Module):
    """``heads``: ``{task: {"kind": "sequence"|"token"|"multilabel", "num_labels": n, "crf": bool}}``, in order."""

    def __init__(self, encoder, heads: dict[str, dict], shapes: bool = False):
        super().__init__()
        self.encoder, self.config = encoder, encoder.config
        self.task_names = list(heads)
        hidden = encoder.config.hidden_size
        self.heads = nn.ModuleDict({name: make_head(hidden, spec) for name, spec in heads.items()})
        self.shapes = ShapeEmbedding(hidden) if shapes else None  # shape_features (modeling/shapes.py)

    def gradient_checkpointing_enable(self, **kwargs):
        self.encoder.gradient_checkpointing_enable(**kwargs)

    def hidden(self, input_ids, attention_mask, shape_ids=None) -> torch.Tensor:
        """The encoder's last hidden states (with the token-shape embedding added to its input, if it has one)."""
        return run_with_shapes(self.encoder, self.shapes, input_ids, attention_mask, shape_ids).last_hidden_state

    def forward(self, input_ids=None, attention_mask=None, task_id=None, token_type_ids=None, shape_ids=None):
        """All heads' logits as a dict (inference); with ``task_id`` (training, one task per batch) only that
        head's, as ``{"logits": ...}``. Token type ids are never passed: single texts, so they are all zero."""
        hidden = self.hidden(input_ids, attention_mask, shape_ids)
        if task_id is not None:
            name = self.task_names[int(task_id.reshape(-1)[0])]
            return {"logits": self.heads[name](hidden, attention_mask)}
        return {name: head(hidden, attention_mask) for name, head in self.heads.items()}

    def crf_of(self, task: str):
        """The CRF of a token head, or None."""
        return getattr(self.heads[task], "crf", None)

    def save(self, directory: Path) -> None:
        """The encoder as a Hugging Face model, the heads (CRF included) in ``heads.safetensors``."""
        from safetensors.torch import save_file

        self.encoder.save_pretrained(directory)
        save_file({k: v.contiguous() for k, v in self.heads.state_dict().items()}, str(Path(directory) / HEADS_FILE))
        if self.shapes is not None:
            self.shapes.save(Path(directory))

    @classmethod
    def load(cls, directory: Path, heads: dict[str, dict], shapes: bool = False, **encoder_options) -> MultitaskModel:
        """``encoder_options`` go to ``AutoModel.from_pretrained`` (e.g. ``attn_implementation``)."""
        from safetensors.torch import load_file
        from transformers import AutoModel

        model = cls(AutoModel.from_pretrained(directory, use_safetensors=True, **encoder_options), heads, shapes)
        model.heads.load_state_dict(load_file(str(Path(directory) / HEADS_FILE)))
        if model.shapes is not None:
            model.shapes.load(Path(directory))
        return model.eval()


class HeadLogits(nn.Module):
    """``(input_ids, attention_mask[, shape_ids]) -> tuple of logits, one per head``: the shape every backend and
    exporter sees, for a multitask bundle and for a per-task Hugging Face model alike."""

    def __init__(self, model):
        super().__init__()
        self.model = model.eval()

    def forward(self, input_ids, attention_mask, shape_ids=None):
        shapes = {} if shape_ids is None else {"shape_ids": shape_ids}
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, **shapes)
        return (out.logits,) if hasattr(out, "logits") else tuple(out.values())
