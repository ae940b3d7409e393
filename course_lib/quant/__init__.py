"""Quantization: absmax/zero-point, per-tensor/channel/group, int4 packing, NF4, double
quantization, LLM.int8() decomposition, and a weight-only quantized Linear.

Taught in book/03_quantization.md (and used again in chapters 5 and 6).
"""

from .integer import (
    absmax_quantize,
    dequantize,
    pack_int4,
    quant_error,
    unpack_int4,
    zeropoint_quantize,
)
from .linear import WEIGHT_FORMATS, QuantLinear, model_nbytes, quantize_model
from .nf4 import (
    NF4_LEVELS,
    NF4_OFFSET,
    double_dequantize,
    double_quantize,
    nf4_dequantize,
    nf4_levels,
    nf4_quantize,
    scale_overhead_bits,
)
from .outliers import int8_matmul, llm_int8_matmul, outlier_features

__all__ = [
    "NF4_LEVELS",
    "NF4_OFFSET",
    "QuantLinear",
    "WEIGHT_FORMATS",
    "absmax_quantize",
    "dequantize",
    "double_dequantize",
    "double_quantize",
    "int8_matmul",
    "llm_int8_matmul",
    "model_nbytes",
    "nf4_dequantize",
    "nf4_levels",
    "nf4_quantize",
    "outlier_features",
    "pack_int4",
    "quant_error",
    "quantize_model",
    "scale_overhead_bits",
    "unpack_int4",
    "zeropoint_quantize",
]
