"""int8 dynamic quantisation with ONNX Runtime's quantiser (weights int8 ahead of time, activations per call)."""
from __future__ import annotations

from pathlib import Path


def quantize_int8(source: Path, target: Path) -> None:
    """Quantise the MatMul / Attention weights of an (already fused) fp32 model to int8."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from .onnx import quiet

    # the fused graph holds com.microsoft ops (BiasGelu, Attention) that ONNX shape inference cannot type
    with quiet():
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8,
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
