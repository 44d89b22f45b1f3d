"""Classification losses: plain cross-entropy, class-weighted cross-entropy, focal loss."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

IGNORE = -100


def inverse_frequency_weights(counts: Sequence[int]) -> torch.Tensor:
    """Weights ~ 1/frequency, normalised to mean 1 over classes present; absent classes weigh 1."""
    counts_t = torch.tensor(counts, dtype=torch.float)
    present = counts_t > 0
    weights = torch.ones_like(counts_t)
    weights[present] = counts_t[present].sum() / (present.sum() * counts_t[present])
    return weights / weights[present].mean()


def is_imbalanced(counts: Sequence[int], ratio: float = 1.5) -> bool:
    """Whether the largest class outnumbers the smallest by more than ``ratio``."""
    present = [c for c in counts if c > 0]
    return bool(present) and max(present) / min(present) >= ratio


def classification_loss(
    logits: torch.Tensor, labels: torch.Tensor, kind: str, weights: torch.Tensor | None = None, gamma: float = 2.0
) -> torch.Tensor:
    """Loss over the last axis of ``logits``; ``labels`` equal to -100 are ignored (padding, special tokens)."""
    logits = logits.reshape(-1, logits.shape[-1]).float()
    labels = labels.reshape(-1)
    weight = weights.to(logits.device) if kind in ("weighted", "focal") and weights is not None else None
    if kind == "focal":
        keep = labels != IGNORE
        logits, labels = logits[keep], labels[keep]
        if labels.numel() == 0:
            return logits.sum() * 0.0
        log_p = F.log_softmax(logits, dim=-1).gather(1, labels[:, None]).squeeze(1)
        loss = -((1 - log_p.exp()) ** gamma) * log_p
        if weight is not None:
            w = weight[labels]
            return (loss * w).sum() / w.sum()
        return loss.mean()
    return F.cross_entropy(logits, labels, weight=weight, ignore_index=IGNORE)
