"""Run a trained single-task model: tokenise once, one forward pass, decode to labels or PII spans.

This is the code path that ``classify``, ``eval`` and the end of ``train`` share, so what is evaluated is
what is served. (The multitask bundle, ONNX backends and long-input windows build on this.)
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..data.spans import decode_spans
from ..errors import RouterforgeError

INFO_FILE = "routerforge.json"
JAILBREAK_THRESHOLD = 0.5  # until a calibrated threshold is stored in the model


def read_info(path: str | Path) -> dict:
    info_path = Path(path) / INFO_FILE
    if not info_path.is_file():
        raise RouterforgeError(f"not a routerforge model directory (no {INFO_FILE})", source=str(path),
                               hint="pass a directory written by 'routerforge train'")
    try:
        return json.loads(info_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise RouterforgeError(f"{INFO_FILE} is not valid JSON: {err.msg}", source=str(info_path)) from None


def _softmax(logits: np.ndarray) -> np.ndarray:
    logits = logits.astype(np.float64)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


class TaskModel:
    """A fine-tuned single-task model with its tokenizer and ``routerforge.json``."""

    def __init__(self, model, tokenizer, info: dict):
        self.model, self.tokenizer, self.info = model.eval(), tokenizer, info
        self.kind = info["kind"]
        self.id2label = {int(k): v for k, v in model.config.id2label.items()}
        limits = [getattr(model.config, "max_position_embeddings", 512), tokenizer.model_max_length, 512]
        self.max_length = int(min(limits))

    @property
    def jailbreak_threshold(self) -> float:
        """Flag when P(jailbreak) >= this: the model's stored threshold, else 0.5 (argmax)."""
        return float(self.info.get("thresholds", {}).get("jailbreak", JAILBREAK_THRESHOLD))

    @classmethod
    def load(cls, path: str | Path, *, allow_pickle: bool = False) -> "TaskModel":
        return cls.load_parts(path, read_info(path), allow_pickle=allow_pickle)

    @classmethod
    def load_parts(cls, path: str | Path, info: dict, *, allow_pickle: bool = False) -> "TaskModel":
        """Load weights and tokenizer from ``path`` with ``info`` given (used before routerforge.json exists)."""
        from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification, AutoTokenizer

        path = Path(path)
        safetensors = (path / "model.safetensors").is_file() or (path / "model.safetensors.index.json").is_file()
        if not safetensors and not allow_pickle:
            raise RouterforgeError("no model.safetensors in the model directory; pickled weights are refused",
                                   source=str(path), hint="pass --allow-pickle only for a model you trust")
        auto = AutoModelForTokenClassification if info["kind"] == "token" else AutoModelForSequenceClassification
        try:
            model = auto.from_pretrained(path, use_safetensors=True if safetensors else None)
            tokenizer = AutoTokenizer.from_pretrained(path)
            if info.get("crf"):
                from ..modeling.heads import load_crf

                model = load_crf(model, path)
        except (OSError, ValueError) as err:
            raise RouterforgeError(f"cannot load the model: {err}", source=str(path)) from None
        return cls(model, tokenizer, info)

    def forward(self, texts: list[str]) -> tuple[np.ndarray, dict]:
        """Logits for a batch, the offsets, and which rows were longer than the window (and so truncated)."""
        import torch

        def encode(truncate: bool):
            return self.tokenizer(texts, truncation=truncate, max_length=self.max_length if truncate else None,
                                  padding=True, return_offsets_mapping=True, return_tensors="pt")

        encoded = encode(False)
        lengths = encoded["attention_mask"].sum(dim=1)
        truncated = (lengths > self.max_length).tolist()
        if any(truncated):
            encoded = encode(True)
        offsets = encoded.pop("offset_mapping")
        inputs = {k: v for k, v in encoded.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
        with torch.inference_mode():
            logits = self.model(**inputs).logits
            tags = None
            if self.info.get("crf"):  # Viterbi over the text's own tokens: those with a character range
                tags = self.model.decode(logits, offsets[..., 1] > offsets[..., 0]).numpy()
        return logits.float().numpy(), {"offsets": offsets.tolist(), "attention_mask": inputs["attention_mask"].numpy(),
                                        "truncated": truncated, "tags": tags}

    def predict(self, texts: list[str], batch_size: int = 32) -> list[dict]:
        """One dict per text: ``{label, confidence, probs}`` (sequence) or ``{pii: [spans]}`` (token)."""
        results: list[dict] = []
        for start in range(0, len(texts), batch_size):
            batch = texts[start:start + batch_size]
            logits, extra = self.forward(batch)
            for row, text in enumerate(batch):
                results.append(self._decode(text, logits[row], extra, row) | {"truncated": extra["truncated"][row]})
        return results

    def _decode(self, text: str, logits: np.ndarray, extra: dict, row: int) -> dict:
        probs = _softmax(logits)
        if self.kind == "token":
            mask = extra["attention_mask"][row].astype(bool)
            offsets = [tuple(o) for o, keep in zip(extra["offsets"][row], mask) if keep]
            token_probs = probs[mask]
            if extra["tags"] is not None:  # CRF: Viterbi tags; score = the emission probability of each tag
                tags = extra["tags"][row][mask].clip(min=0)
            else:
                tags = token_probs.argmax(-1)
            confidence = token_probs[np.arange(len(tags)), tags]
            spans = decode_spans(text, offsets, tags, confidence, self.id2label)
            return {"pii": spans}
        best = int(probs.argmax())
        out = {"label": self.id2label[best], "confidence": float(probs[best]),
               "probs": {self.id2label[i]: float(p) for i, p in enumerate(probs)}}
        if self.info["task"] == "jailbreak" and "jailbreak" in out["probs"]:
            out["p_jailbreak"] = out["probs"]["jailbreak"]
            out["flagged"] = out["p_jailbreak"] >= self.jailbreak_threshold
        return out
