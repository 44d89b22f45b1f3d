"""Training hyperparameters: adaptive defaults by training-set size, every value overridable."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# Bundle settings that are not hyperparameters (config.MultitaskConfig), refused in training.overrides
BUNDLE_SETTINGS = ("group_task_lengths", "cross_task_negatives", "teachers", "adversarial_from")


class Hyperparams(BaseModel):
    """Everything the trainer needs besides data and backbone. CLI flags and YAML ``overrides`` use these names."""

    model_config = ConfigDict(extra="forbid")

    epochs: float = Field(3, gt=0, description="training epochs (early stopping may end sooner)")
    batch_size: int = Field(8, ge=1, description="examples per device per step (under torchrun: per process)")
    lr: float = Field(2e-5, gt=0, description="peak learning rate (linear decay after warmup)")
    weight_decay: float = Field(0.1, ge=0, description="AdamW weight decay")
    warmup: float = Field(0.06, ge=0, lt=1, description="warmup as a fraction of all steps")
    patience: int = Field(
        2,
        ge=0,
        description="validations (every epoch, or every save_steps) without improvement before stopping (0: off)",
    )
    max_length: int = Field(128, ge=8, description="training window in tokens; longer rows are truncated and counted")
    max_steps: int | None = Field(None, ge=1, description="stop after this many optimiser steps (overrides epochs)")
    save_steps: int | None = Field(
        None,
        ge=1,
        description="validate and checkpoint every N optimiser steps, so "
        "--resume loses at most N (default: every epoch)",
    )
    seed: int = Field(13, description="seed for initialisation, shuffling and dropout")
    loss: Literal["ce", "weighted", "focal"] | None = Field(
        None, description="ce, weighted (class-weighted CE) or focal; default: weighted when classes are imbalanced"
    )
    focal_gamma: float = Field(2.0, ge=0, description="focusing parameter of the focal loss")
    gradient_checkpointing: bool = Field(False, description="trade compute for memory on long inputs")
    shape_features: bool = Field(
        False,
        description="add a learned embedding of each token's case/digit/punctuation shape, read from the original "
        "text, to the encoder's input (what an uncased tokenizer loses: 'Jordan' vs 'jordan'; PII)",
    )
    lexical: bool = Field(
        True,
        description="label heads but jailbreak: mix in a word n-gram logistic regression fitted on the training "
        "split, its weight chosen on validation and kept only when its gain there is more than chance (category of "
        "the local-data bundle: +2.7 points on validation; benchmarks/README.md)",
    )
    eval_batch_size: int = Field(32, ge=1, description="batch size for validation and test prediction")
    fp16: bool | Literal["auto"] = Field(
        "auto",
        description="mixed precision (fp16) on a CUDA GPU without bf16; auto: on when there is one. Never on CPU",
    )
    bf16: bool | Literal["auto"] = Field(
        "auto",
        description="bf16 autocast; auto: on a CPU with native bf16 (AVX-512 BF16 or AMX: 1.6x the tokens/s of "
        "fp32 on MiniLM) and on a GPU that supports it (then instead of fp16)",
    )


# (max training rows, values) from the project brief: small sets get gentler, regularised training.
ADAPTIVE = (
    (999, dict(epochs=2, batch_size=4, lr=1e-5, weight_decay=0.15, warmup=0.1, patience=1)),
    (5000, dict(epochs=3, batch_size=8, lr=2e-5, weight_decay=0.1, warmup=0.06, patience=2)),
    (None, dict(epochs=4, batch_size=16, lr=3e-5, weight_decay=0.05, warmup=0.03, patience=3)),
)
LORA_LR = 1e-4
# Token tasks (PII) start a fresh head over 2 x types + 1 BIO tags; the sequence-task table undertrains it.
# Measured on Presidio synth_dataset_v2 (880 train rows, MiniLM): 2 epochs at lr 1e-5 -> test entity F1 0.20;
# 10 epochs at lr 5e-5 -> 0.67 (docs/training-and-evaluation.md). Floors, so a larger table value still wins.
TOKEN_FLOORS = dict(epochs=10, lr=5e-5, patience=3)


def adaptive_hyperparams(
    n_train: int, *, lora: bool = False, kind: str = "sequence", overrides: dict | None = None
) -> Hyperparams:
    """Defaults by training-set size (<1k, 1k-5k, >5k rows); token tasks get the floors in ``TOKEN_FLOORS``;
    LoRA defaults to lr 1e-4; overrides win."""
    values: dict[str, Any] = dict(next(v for limit, v in ADAPTIVE if limit is None or n_train <= limit))
    if kind == "token":
        values |= {k: max(values[k], floor) for k, floor in TOKEN_FLOORS.items()}
    values |= {"lr": max(values["lr"], LORA_LR)} if lora else {}
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return Hyperparams(**values)
