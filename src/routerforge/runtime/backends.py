"""Backends: run the encoder and every head on padded token ids, return ``{head: logits}`` as numpy arrays.

``OnnxBackend`` imports only onnxruntime (a serving process never imports torch); ``TorchBackend`` runs the
saved PyTorch model (a per-task Hugging Face model or a multitask bundle); ``TorchScriptBackend`` runs an
exported ``model.torchscript.pt``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..bundle import is_bundle, shape_features
from ..errors import RouterforgeError

ONNX_FILES = {"onnx-int8": "model.int8.onnx", "onnx": "model.onnx"}
TORCHSCRIPT_FILE = "model.torchscript.pt"
SEVEN_BIT = "-7bit"  # the int8 recipes with 7-bit weights (exporters/quantize.py)


def int8_saturates() -> bool:
    """Whether this CPU runs ONNX Runtime's uint8 x int8 products with saturating pair sums: x86 without VNNI
    (read from /proc/cpuinfo; elsewhere assumed not). Full-range int8 weights lose whole logits there; 7-bit ones
    do not (exporters/quantize.py)."""
    import platform

    cpuinfo = Path("/proc/cpuinfo")
    if platform.machine().lower() not in ("x86_64", "amd64") or not cpuinfo.is_file():
        return False
    flags = next((line for line in cpuinfo.read_text().splitlines() if line.startswith("flags")), "")
    return not {"avx512_vnni", "avx_vnni"} & set(flags.split())


def saturation_warning(info: dict) -> str | None:
    """Why an int8 file should not be trusted on this CPU: full-range weights (recipe not ``-7bit``; files from
    before recipes were recorded are full-range) whose parity check ran on a CPU that does not saturate them, loaded
    on one that does. None when the file is fine here."""
    record = (info.get("exports") or {}).get("onnx-int8") or {}
    recipe = record.get("recipe") or "not recorded"
    if recipe.endswith(SEVEN_BIT) or record.get("cpu_saturates_int8") is True or not int8_saturates():
        return None
    return (
        f"model.int8.onnx holds full-range int8 weights (recipe {recipe}) that the export's parity check judged on "
        "a CPU with VNNI (or did not record on which), and this CPU lacks VNNI: ONNX Runtime saturates them here, "
        "so its answers may differ from the ones that check accepted; re-export on this machine (routerforge "
        "export MODEL --format onnx-int8 picks 7-bit weights) or serve --backend onnx"
    )


class OnnxBackend:
    """ONNX Runtime over model.onnx / model.int8.onnx: every head's logits in one call.

    ``row_wise`` (int8): each window runs alone, without padding. Dynamic int8 quantises activations with one
    scale per tensor, so in a batch every row's rounding depends on its neighbours and on the padding: a long or
    extreme text sent at the same moment moved another request's logits by up to 5 (PII F1 0.786 batched
    against 0.816 alone, on the same int8 file). Alone, a text gets the same answer whoever else is queued;
    on 2 cores this costs up to 1.37x on batches of equal-length texts and nothing on mixed lengths
    (benchmarks/README.md)."""

    def __init__(self, file: Path, threads: int | None = None, row_wise: bool = False):
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(file), options, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own untyped errors for bad files
            raise RouterforgeError(f"cannot load the ONNX model: {err}", source=str(file)) from None
        self.outputs = [o.name for o in self.session.get_outputs()]
        self.row_wise = row_wise

    def __call__(
        self, input_ids: np.ndarray, attention_mask: np.ndarray, shape_ids: np.ndarray | None = None
    ) -> dict[str, np.ndarray]:
        inputs = [input_ids, attention_mask] + ([] if shape_ids is None else [shape_ids])
        if not self.row_wise or len(input_ids) == 1:
            return self._run(inputs)
        rows = []
        for row, length in enumerate(attention_mask.sum(axis=1)):
            rows.append(self._run([x[row : row + 1, : max(int(length), 1)] for x in inputs]))
        out = {}
        for name, first in rows[0].items():
            if first.ndim == 2:  # sequence head: (1, labels) per row
                out[name] = np.concatenate([r[name] for r in rows])
            else:  # token head: (1, tokens, labels), padded back to the batch width with zeros
                out[name] = np.zeros((len(rows), input_ids.shape[1], first.shape[-1]), dtype=first.dtype)
                for row, r in enumerate(rows):
                    out[name][row, : r[name].shape[1]] = r[name][0]
        return out

    def _run(self, inputs: list[np.ndarray]) -> dict[str, np.ndarray]:
        feed = dict(zip(("input_ids", "attention_mask", "shape_ids"), inputs))
        return dict(zip(self.outputs, self.session.run(self.outputs, feed)))


class TorchBackend:
    """The PyTorch model (training, evaluation and the parity reference)."""

    def __init__(self, path: Path, info: dict, heads: dict, allow_pickle: bool = False):
        self.module = load_torch_module(path, info, heads, allow_pickle=allow_pickle)
        self.names = list(heads)

    def __call__(
        self, input_ids: np.ndarray, attention_mask: np.ndarray, shape_ids: np.ndarray | None = None
    ) -> dict[str, np.ndarray]:
        import torch

        inputs = [input_ids, attention_mask] + ([] if shape_ids is None else [shape_ids])
        with torch.inference_mode():
            outputs = self.module(*(torch.from_numpy(x) for x in inputs))
        return {name: out.float().numpy() for name, out in zip(self.names, outputs)}


class TorchScriptBackend(TorchBackend):
    """A traced TorchScript module (``model.torchscript.pt``)."""

    def __init__(self, file: Path, heads: dict):
        import torch

        self.module, self.names = torch.jit.load(str(file), map_location="cpu").eval(), list(heads)


def load_torch_module(
    path: Path, info: dict, heads: dict, allow_pickle: bool = False, attn_implementation: str | None = None
):
    """The saved model as a module ``(input_ids, attention_mask[, shape_ids]) -> tuple of logits, one per head``
    (the same module the exporters trace, with ``attn_implementation="eager"``: the attention graph ONNX Runtime
    fuses)."""
    path = Path(path)
    safetensors = (path / "model.safetensors").is_file() or (path / "model.safetensors.index.json").is_file()
    if not safetensors and not allow_pickle:
        raise RouterforgeError(
            "no model.safetensors in the model directory; pickled weights are refused",
            source=str(path),
            hint="pass --allow-pickle only for a model you trust",
        )
    options: dict[str, Any] = {"attn_implementation": attn_implementation} if attn_implementation else {}
    model: Any
    try:
        if is_bundle(info):
            from ..modeling.multitask import MultitaskModel

            model = MultitaskModel.load(
                path,
                {
                    n: {"kind": h["kind"], "num_labels": len(h["label_names"]), "crf": h.get("crf", False)}
                    for n, h in heads.items()
                },
                shapes=shape_features(info),
                **options,
            )
        else:
            from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification

            auto = AutoModelForTokenClassification if info["kind"] == "token" else AutoModelForSequenceClassification
            model = auto.from_pretrained(path, use_safetensors=True if safetensors else None, **options)
            if shape_features(info):
                from ..modeling.shapes import ShapeAware

                model = ShapeAware.load(model, path)
    except (OSError, ValueError, RuntimeError) as err:
        raise RouterforgeError(f"cannot load the model: {err}", source=str(path)) from None

    from ..modeling.multitask import HeadLogits

    return HeadLogits(model).eval()
