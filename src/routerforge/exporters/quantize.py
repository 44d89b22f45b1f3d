"""int8 dynamic quantisation with ONNX Runtime's quantiser (weights int8 ahead of time, activations per call).

Recipes go from fastest to most conservative; the exporter takes the first whose parity check passes:
1. per-channel int8 weights in every linear layer of the encoder (the heads stay fp32: tiny, and they
   decide);
2. the same, with the one feed-forward down-projection that moves the logits most kept fp32, chosen by
   measurement (:func:`most_sensitive`): the down-projections' inputs (after GELU) carry the activation
   outliers that dynamic int8 rounds worst, and one layer's may dominate (the s7 bundle's first: 15-17% of the
   error against at most 9% for any other);
3. the same, with every feed-forward down-projection kept fp32;
4. int8 only in the attention projections, the whole feed-forward block fp32.
Recipes 1, 3 and 4 on the MiniLM local-data bundle (category head, 913 validation texts, label agreement with
fp32): 98.0%, 98.7%, 99.2%; p50 for a 29-token text 3.3, 4.1, 5.0 ms against 5.5 ms fp32 (one noisy run). On the
s7 bundle recipe 1 failed the gate (intent's ECE) and recipe 2 passed within +1.4% to +7.5% of s6's all-int8
file's latency, where recipe 3 had cost +18% (``benchmarks/README.md``).
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

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ..errors import RouterforgeError
from ..runtime.backends import SEVEN_BIT, int8_saturates

RECIPES = (
    "int8-per-channel",
    "int8-per-channel-sensitive-fp32",
    "int8-per-channel-ffn-down-fp32",
    "int8-attention-only",
)
SENSITIVE = RECIPES[1]
MIN_ERROR = 1e-6  # a head whose logits int8 moves less than this has no error to share out


def is_sensitive(recipe: str) -> bool:
    """The sensitive recipe (7-bit or not): it needs :func:`most_sensitive`'s choice."""
    return recipe.removesuffix(SEVEN_BIT) == SENSITIVE


def recipes(saturating: bool | None = None) -> list[str]:
    """The recipes in the order the exporter tries them: full-range weights first, unless this CPU saturates."""
    full, seven = list(RECIPES), [r + SEVEN_BIT for r in RECIPES]
    return seven + full if (int8_saturates() if saturating is None else saturating) else full + seven


def _linear(model) -> list[str]:
    return [n.name for n in model.graph.node if n.op_type in ("MatMul", "Gemm")]


def down_projections(model) -> list[str]:
    """The feed-forward down-projections, by node name (BERT: output dense; ModernBERT: mlp Wo)."""
    return [
        n for n in _linear(model) if n.endswith(("/output/dense/MatMul", "/mlp/Wo/MatMul")) and "attention" not in n
    ]


def _excluded(model, recipe: str, keep: Sequence[str] = ()) -> list[str]:
    """Linear nodes a recipe keeps fp32, by name: the heads (whatever is outside the encoder) and, per recipe,
    feed-forward layers (BERT: intermediate/output dense; ModernBERT: mlp Wi/Wo); ``keep``: the sensitive
    recipe's measured nodes. ONNX Runtime's quantiser first turns each Gemm into a MatMul named ``<Gemm>_MatMul``
    and only then reads the exclusions, so a Gemm is excluded under both names (the heads' dense layers are
    Gemms: named once, they were quantised)."""
    linear = _linear(model)
    heads = [n for n in linear if "encoder" not in n and "/model/model/" not in n]
    down = down_projections(model)
    up = [n for n in linear if n.endswith(("/intermediate/dense/MatMul", "/mlp/Wi/MatMul"))]
    by_recipe = {RECIPES[0]: [], SENSITIVE: list(keep), RECIPES[2]: down, RECIPES[3]: down + up}
    excluded = heads + by_recipe[recipe.removesuffix(SEVEN_BIT)]
    gemms = {n.name for n in model.graph.node if n.op_type == "Gemm"}
    return excluded + [f"{n}_MatMul" for n in excluded if n in gemms]


def quantize_int8(source: Path, target: Path, recipe: str = RECIPES[0], keep: Sequence[str] = ()) -> None:
    """Quantise the fp32 (fused) model at ``source`` into ``target`` with one of :func:`recipes`; the sensitive
    recipe needs the nodes to ``keep`` fp32 (:func:`most_sensitive`)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from .onnx import quiet

    if is_sensitive(recipe) and not keep:
        raise RouterforgeError(f"the {recipe} recipe needs the nodes to keep fp32", hint="see most_sensitive()")
    exclude = _excluded(onnx.load(str(source), load_external_data=False), recipe, keep)
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


def most_sensitive(
    source: Path, scratch: Path, recipe: str, logits: Callable[[Path], dict[str, list[np.ndarray]]]
) -> dict:
    """The feed-forward down-projection whose int8 rounding moves the heads' logits most, for ``recipe`` (the
    sensitive one, 7-bit or not). Each down-projection in turn stays fp32 with everything else int8; its score is
    the share of the all-int8 logit error (per head: the mean over sample rows of the largest |logit - fp32
    logit|) that goes away, averaged over the heads whose logits int8 moves at all. ``logits(file)``: each head's
    sample logits from a model file (the exporter's sample of training texts through the runtime). Returns
    ``{"kept_fp32": node, "error_drop": {node: score}}``; ``kept_fp32`` is None, with ``skipped`` saying why, where
    the recipe cannot help: fewer than two down-projections (one is the next recipe's file), or none whose fp32
    lowers the error."""
    import onnx

    down = down_projections(onnx.load(str(source), load_external_data=False))
    if len(down) < 2:
        return {"kept_fp32": None, "error_drop": {}, "skipped": f"{len(down)} feed-forward down-projection(s)"}

    def error(file: Path) -> dict[str, float]:
        got = logits(file)
        rows = {h: [np.abs(a - b).max() for a, b in zip(fp32[h], got[h]) if a.size] for h in fp32}
        return {h: float(np.mean(r)) if r else 0.0 for h, r in rows.items()}

    fp32 = logits(source)
    quantize_int8(source, scratch, RECIPES[0] + recipe.removeprefix(SENSITIVE))
    whole = {h: e for h, e in error(scratch).items() if e > MIN_ERROR}
    if not whole:
        return {"kept_fp32": None, "error_drop": {}, "skipped": "all-int8 moved no head's logits"}
    drops = {}
    for node in down:
        quantize_int8(source, scratch, recipe, [node])
        alone = error(scratch)
        drops[node] = float(np.mean([1 - alone[h] / whole[h] for h in whole]))
    best = max(drops, key=drops.__getitem__)
    if drops[best] <= 0:
        return {"kept_fp32": None, "error_drop": drops, "skipped": "no down-projection kept fp32 lowers the error"}
    return {"kept_fp32": best, "error_drop": drops}
