"""LoRA through peft: settings, wrapping, and saving both the adapter and a merged model."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..modeling.backbones import resolve_lora_targets


class LoraSettings(BaseModel):
    """LoRA hyperparameters (``lora:`` in the YAML schema, ``--lora-*`` on the CLI)."""

    model_config = ConfigDict(extra="forbid")

    rank: int = Field(8, ge=1, description="rank r of the low-rank update")
    alpha: float | None = Field(
        None, gt=0, description="scaling alpha (update scaled by alpha / rank); default 2 x rank"
    )
    dropout: float = Field(0.1, ge=0, lt=1, description="dropout on the LoRA branch")
    targets: str | list[str] = Field("auto", description="module names to adapt; auto: per architecture")

    @model_validator(mode="after")
    def _default_alpha(self) -> LoraSettings:
        if self.alpha is None:
            self.alpha = 2.0 * self.rank
        return self


def wrap_with_lora(model, settings: LoraSettings, head_modules: list[str]):
    """Freeze the encoder, add LoRA to its target layers; the task head stays fully trainable."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=settings.rank,
        # peft annotates int; a float alpha works (scaling = alpha / r); LoraSettings always sets it
        lora_alpha=settings.alpha,  # type: ignore[arg-type]
        lora_dropout=settings.dropout,
        target_modules=resolve_lora_targets(model, settings.targets),
        modules_to_save=head_modules,
    )
    return get_peft_model(model, config)


def save_lora(peft_model, directory: Path) -> None:
    """Adapter under ``adapter/`` (so transformers does not mistake the model dir for an adapter), then the
    merged model at the top level: serving needs no peft."""
    from ..modeling.heads import save_model

    peft_model.save_pretrained(directory / "adapter")
    save_model(peft_model.merge_and_unload(), directory)


def head_module_names(model) -> list[str]:
    """The task head's modules (by their last name), which LoRA keeps fully trainable and saves."""
    # ModernBERT: head (dense + norm) before its classifier; shapes: the token-shape embedding (shape_features)
    heads = ("classifier", "score", "crf", "head", "shapes")
    return sorted({name.rsplit(".", 1)[-1] for name, _ in model.named_modules() if name.rsplit(".", 1)[-1] in heads})
