"""Per-task models as teachers of the bundle's label heads, with teacher annealing (Clark et al., 2019, "BAM!
Born-Again Multi-Task Networks"): a head's target moves from the teacher's probabilities at the start of training to
the gold label at the end, ``loss = t * gold_loss + (1 - t) * soft_cross_entropy(teacher)`` with ``t`` the share of
training done.

A teacher must have been trained on none of the bundle's validation or test rows (checked against both
manifests), must cover the same labels, and scores the bundle's training rows once, before training, through the
runtime (its encoder's first-window logits, before any lexical prior).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..bundle import head_data
from ..data.splits import TaskData, row_hash
from ..errors import RouterforgeError
from ..numerics import softmax


def teacher_probabilities(
    teacher: str | Path, task: str, data: TaskData, names: list[str], texts: list[str]
) -> np.ndarray:
    """``(len(texts), labels)`` probabilities of ``teacher`` on the training ``texts`` of ``data``'s task,
    columns in ``names``' order."""
    from ..runtime.engine import Router, read_info

    where = f"multitask.teachers.{task}"
    leaked = _trained_on(read_info(teacher), task) & {row_hash(e) for s in ("val", "test") for e in data.split(s)}
    if leaked:
        raise RouterforgeError(
            f"the {task} teacher {teacher} trained on {len(leaked)} of the bundle's validation or test rows",
            source=where,
            hint="train the teacher on the same config (same data, seed and splits) as the bundle",
        )
    router = Router.load(teacher)
    if (router.heads.get(task) or {}).get("kind") != "sequence":
        raise RouterforgeError(f"{teacher} has no label head named {task}", source=where)
    teacher_names = list(router.heads[task]["label_names"])
    if sorted(teacher_names) != sorted(names):
        raise RouterforgeError(f"the {task} teacher's labels differ from the bundle's", source=where)
    logits = np.stack(router.window_logits(texts)[task])
    order = [teacher_names.index(name) for name in names]
    return softmax(logits[:, order], 1.0)


def _trained_on(info: dict, task: str) -> set[str]:
    manifest = head_data(info, task).get("manifest") or {}
    train = (manifest.get("splits") or {}).get("train")
    if train is None:
        raise RouterforgeError(f"the {task} teacher records no training split: leakage cannot be checked")
    return {row for _, row in train}


def annealed_loss(gold_loss: torch.Tensor, logits: torch.Tensor, soft: torch.Tensor, done: float) -> torch.Tensor:
    """``done`` (0 -> 1 over training) of the gold loss plus the rest of the soft cross-entropy to the teacher."""
    soft_ce = torch.nn.functional.cross_entropy(logits.float(), soft)  # probabilities as targets
    return done * gold_loss + (1.0 - done) * soft_ce
