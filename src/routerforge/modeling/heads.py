"""Task heads beyond what transformers ships: a linear-chain CRF over a token classifier's emissions (PII).

The CRF (pytorch-crf) learns which BIO tag may follow which, so decoded spans are well formed (no ``I-X``
after ``O``, no type switch inside an entity). Special tokens and padding carry no tag: they are squeezed out
before the CRF sees a sequence, so its first step is always a real token.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torchcrf import CRF

CRF_FILE = "crf.safetensors"


def _compact(values: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Move the masked positions of each row to its front, in order; returns (values, mask, gather index)."""
    order = torch.argsort((~mask).to(torch.int8), dim=1, stable=True)
    index = order.view(*order.shape, *([1] * (values.dim() - 2))).expand(*order.shape, *values.shape[2:])
    compact_mask = mask.gather(1, order)
    compact_mask[:, 0] = True  # the CRF needs a first step; a row with no text token gets one "O" position
    return values.gather(1, index), compact_mask, order


class CrfTokenClassifier(torch.nn.Module):
    """A Hugging Face token-classification model whose logits are the emissions of a CRF."""

    def __init__(self, token_model, num_labels: int):
        super().__init__()
        self.token_model = token_model
        self.crf = CRF(num_labels, batch_first=True)
        self.config = token_model.config

    def gradient_checkpointing_enable(self, **kwargs):
        self.token_model.gradient_checkpointing_enable(**kwargs)

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, shape_ids=None):
        # named arguments: the Trainer keeps only dataset columns that forward() names
        inputs = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "token_type_ids": token_type_ids,
            "shape_ids": shape_ids,  # only a ShapeAware token model takes them; None otherwise
        }
        return self.token_model(**{k: v for k, v in inputs.items() if v is not None})

    def nll(self, emissions: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The CRF's negative log-likelihood of the gold tags (the training loss)."""
        return crf_nll(self.crf, emissions, labels)

    def decode(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Viterbi tags per token (padding and special tokens masked)."""
        return crf_decode(self.crf, emissions, mask)


def crf_nll(crf: CRF, emissions: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood of the gold tags (labels of -100 are not tokens of the text)."""
    mask = labels != -100
    compact_emissions, compact_mask, order = _compact(emissions.float(), mask)
    tags = labels.gather(1, order).clamp(min=0)
    return -crf(compact_emissions, tags, mask=compact_mask, reduction="mean")


def crf_decode(crf: CRF, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Viterbi tags in the original positions; -100 where ``mask`` is False."""
    compact_emissions, compact_mask, order = _compact(emissions.float(), mask)
    out = torch.full(mask.shape, -100, dtype=torch.long, device=emissions.device)
    for row, tags in enumerate(crf.decode(compact_emissions, mask=compact_mask)):
        out[row, order[row, : len(tags)]] = torch.tensor(tags, device=emissions.device)
    return out


def save_model(model, directory: Path) -> None:
    """``save_pretrained`` for a plain HF model; for a CRF model, its token model plus ``crf.safetensors``."""
    from safetensors.torch import save_file

    if isinstance(model, CrfTokenClassifier):
        model.token_model.save_pretrained(directory)
        save_file({k: v.contiguous() for k, v in model.crf.state_dict().items()}, str(directory / CRF_FILE))
    else:
        model.save_pretrained(directory)
