"""int8 dynamic quantisation with ONNX Runtime's quantiser (weights int8 ahead of time, activations per call).

Recipes go from fastest to most conservative; the exporter takes the first whose parity check passes:
1. per-channel int8 weights in every linear layer of the encoder (the heads stay fp32: tiny, and they
   decide);
2. the same, with the feed-forward down-projections kept fp32: their inputs (after GELU) carry the
   activation outliers that dynamic int8 rounds worst;
3. int8 only in the attention projections, the whole feed-forward block fp32.
Measured on the MiniLM local-data bundle (category head, 913 validation texts, label agreement with fp32):
98.0%, 98.7%, 99.2%; p50 for a 29-token text 3.3, 4.1, 5.0 ms against 5.5 ms fp32 (one noisy run).
Activation scales are per tensor, so the runtime runs int8 windows one at a time (``OnnxBackend(row_wise=True)``):
a batch neighbour would otherwise change a text's rounding.

Each recipe also comes with 7-bit weights (``-7bit``, ORT's ``reduce_range``). On x86 CPUs without VNNI (AVX2 or
AVX-512 alone: AMD before Zen 4, older Intel) ONNX Runtime multiplies uint8 activations by int8 weights with an
instruction whose 16-bit pair sums saturate, and full-range weights then lose whole logits: on a 2-core AVX2
EPYC, a tiny BERT jailbreak model's p99 int8 logit error was 0.286 with full-range weights (every recipe refused
by the gate, on ECE) and 0.0016 with 7-bit ones. With VNNI there is no saturation and full range rounds finer, so
:func:`recipes` tries the 7-bit ones first only where the exporting CPU saturates. A full-range file exported on
a VNNI machine and served on one without VNNI saturates there: the runtime warns (``docs/export.md``).
"""

from __future__ import annotations

from pathlib import Path

from ..runtime.backends import SEVEN_BIT, int8_saturates

RECIPES = ("int8-per-channel", "int8-per-channel-ffn-down-fp32", "int8-attention-only")


def recipes(saturating: bool | None = None) -> list[str]:
    """The recipes in the order the exporter tries them: full-range weights first, unless this CPU saturates."""
    full, seven = list(RECIPES), [r + SEVEN_BIT for r in RECIPES]
    return seven + full if (int8_saturates() if saturating is None else saturating) else full + seven


def _excluded(model, recipe: str) -> list[str]:
    """Linear nodes a recipe keeps fp32, by name: the heads (whatever is outside the encoder) and, per recipe,
    feed-forward layers (BERT: intermediate/output dense; ModernBERT: mlp Wi/Wo)."""
    linear = [n.name for n in model.graph.node if n.op_type in ("MatMul", "Gemm")]
    heads = [n for n in linear if "encoder" not in n and "/model/model/" not in n]
    down = [n for n in linear if n.endswith(("/output/dense/MatMul", "/mlp/Wo/MatMul")) and "attention" not in n]
    up = [n for n in linear if n.endswith(("/intermediate/dense/MatMul", "/mlp/Wi/MatMul"))]
    return heads + {RECIPES[0]: [], RECIPES[1]: down, RECIPES[2]: down + up}[recipe.removesuffix(SEVEN_BIT)]


def quantize_int8(source: Path, target: Path, recipe: str = RECIPES[0]) -> None:
    """Quantise the fp32 (fused) model at ``source`` into ``target`` with one of :func:`recipes`."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from .onnx import quiet

    exclude = _excluded(onnx.load(str(source), load_external_data=False), recipe)
    # the fused graph holds com.microsoft ops (BiasGelu, Attention) that ONNX shape inference cannot type
    with quiet():
        quantize_dynamic(
            str(source),
            str(target),
            weight_type=QuantType.QInt8,
            per_channel=True,
            reduce_range=recipe.endswith(SEVEN_BIT),  # no saturation on CPUs without VNNI (module docstring)
            nodes_to_exclude=exclude,
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
