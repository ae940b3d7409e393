"""A weight-only quantized ``nn.Linear`` and a function that swaps a model's Linears for it.

Taught in book/03_quantization.md.

Only the stored weight changes; activations stay fp32 and the weight is dequantized on the
fly in ``forward`` (what weight-only kernels do inside the matmul). Formats:

=========  ==========================================  ====================================
fmt        codes                                        scales
=========  ==========================================  ====================================
fp16/bf16  the weight cast to 16 bits                   none
fp8_e4m3   one byte per weight, E4M3 bits               fp32 per output channel (max -> 448)
int8       int8 absmax                                  fp32 per output channel or group
int4       int4 absmax, two codes per byte              fp32 per group (default 64)
nf4        NF4 indices, two per byte                    fp32 per group of 64, or double-quantized
=========  ==========================================  ====================================

NaN or infinity in a weight raises ``ValueError`` for every format (even fp16 could store a
NaN, but a quantized model that silently carries one is worse than an error).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .. import numerics
from .integer import (
    absmax_quantize,
    check_finite,
    check_positive_int,
    dequantize,
    pack_int4,
    unpack_int4,
)
from .nf4 import double_dequantize, double_quantize, nf4_dequantize, nf4_quantize

__all__ = ["WEIGHT_FORMATS", "QuantLinear", "model_nbytes", "quantize_model"]

WEIGHT_FORMATS = ("fp16", "bf16", "fp8_e4m3", "int8", "int4", "nf4")  # numerics.FORMATS: floats


def _check_options(fmt, group_size, double_quant) -> None:
    if not isinstance(fmt, str):
        raise TypeError(f"fmt must be a str, got {type(fmt).__name__}")
    if fmt not in WEIGHT_FORMATS:
        raise ValueError(f"unknown weight format fmt={fmt!r}; expected one of {WEIGHT_FORMATS}")
    if group_size is not None:
        check_positive_int(group_size, "group_size")
        if fmt not in ("int8", "int4", "nf4"):
            raise ValueError(f"group_size applies to int8, int4 and nf4, not fmt={fmt!r}")
    if not isinstance(double_quant, bool):
        raise TypeError(f"double_quant must be a bool, got {double_quant!r}")
    if double_quant and fmt != "nf4":
        raise ValueError(f"double_quant applies to nf4 only, not fmt={fmt!r}")


_E4M3_TABLE = numerics.decode(torch.arange(256), "fp8_e4m3").float()  # bits -> value


class QuantLinear(nn.Module):
    """``y = x @ W_hat.T + b`` with ``W_hat`` rebuilt from compact stored tensors.

    Build it with :meth:`from_linear`. ``nbytes()`` counts the bytes of what is stored.
    """

    def __init__(self, in_features: int, out_features: int, fmt: str,
                 group_size: int | None = None, double_quant: bool = False):
        super().__init__()
        _check_options(fmt, group_size, double_quant)
        check_positive_int(in_features, "in_features")
        check_positive_int(out_features, "out_features")
        self.in_features, self.out_features = in_features, out_features
        self.fmt, self.group_size, self.double_quant = fmt, group_size, double_quant
        self.bias: nn.Parameter | None = None

    @classmethod
    def from_linear(cls, linear: nn.Linear, fmt: str = "int8", group_size: int | None = None,
                    double_quant: bool = False) -> QuantLinear:
        """Quantize ``linear.weight`` (out, in). ``group_size`` defaults to 64 for int4/nf4."""
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"linear must be an nn.Linear, got {type(linear).__name__}")
        _check_options(fmt, group_size, double_quant)
        if fmt in ("int4", "nf4") and group_size is None:
            group_size = 64
        self = cls(linear.in_features, linear.out_features, fmt, group_size, double_quant)
        w = check_finite(linear.weight.detach().float(), "linear.weight")
        if fmt in ("fp16", "bf16"):
            self.register_buffer("weight_codes", w.to(numerics.FORMATS[fmt].torch_dtype))
        elif fmt == "fp8_e4m3":
            scale = (w.abs().amax(dim=1, keepdim=True) / 448.0).clamp(min=1e-30)  # (out, 1)
            bits = numerics.encode(w / scale, "fp8_e4m3").to(torch.uint8)  # from the bit layout
            self.register_buffer("weight_codes", bits)
            self.register_buffer("scale", scale)
        elif fmt in ("int8", "int4"):
            q, scale = absmax_quantize(w, bits=8 if fmt == "int8" else 4, dim=1,
                                       group_size=group_size)
            self.register_buffer("weight_codes", q if fmt == "int8" else pack_int4(q))
            self.register_buffer("scale", scale)
        else:  # nf4
            codes, absmax = nf4_quantize(w, group_size)
            self.register_buffer("weight_codes", pack_int4(codes.reshape(-1)))
            if double_quant:
                q2, scale2, mean = double_quantize(absmax)
                self.register_buffer("scale_codes", q2)
                self.register_buffer("scale2", scale2)
                self.register_buffer("scale_mean", mean)
                self.n_groups = absmax.numel()
            else:
                self.register_buffer("scale", absmax)
        if linear.bias is not None:
            self.bias = nn.Parameter(linear.bias.detach().clone(), requires_grad=False)
        return self

    def dequantized_weight(self) -> torch.Tensor:
        """The fp32 weight (out, in) that ``forward`` multiplies by."""
        shape = (self.out_features, self.in_features)
        if self.fmt in ("fp16", "bf16"):
            return self.weight_codes.float()
        if self.fmt == "fp8_e4m3":
            return _E4M3_TABLE[self.weight_codes.long()] * self.scale
        if self.fmt == "int8":
            return dequantize(self.weight_codes, self.scale)
        if self.fmt == "int4":
            return dequantize(unpack_int4(self.weight_codes), self.scale)
        codes = unpack_int4(self.weight_codes, signed=False)
        if self.double_quant:
            absmax = double_dequantize(self.scale_codes, self.scale2, self.scale_mean,
                                       self.n_groups)
        else:
            absmax = self.scale
        return nf4_dequantize(codes, absmax, self.group_size).reshape(shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.dequantized_weight().to(x.dtype), self.bias)

    def nbytes(self) -> int:
        """Bytes of every stored tensor (codes, scales, bias)."""
        tensors = list(self.buffers()) + ([self.bias] if self.bias is not None else [])
        return sum(t.numel() * t.element_size() for t in tensors)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"fmt={self.fmt}, group_size={self.group_size}, double_quant={self.double_quant}")


def quantize_model(model: nn.Module, fmt: str = "int8", group_size: int | None = None,
                   double_quant: bool = False, skip: tuple[str, ...] = ()) -> nn.Module:
    """Replace every ``nn.Linear`` (except names containing a ``skip`` entry) in place.

    Returns ``model``; deep-copy first to keep the original. A bare ``nn.Linear`` cannot
    replace itself in place, so for one the *new* :class:`QuantLinear` is returned (use the
    return value). A model with no ``nn.Linear`` left to quantize raises ``ValueError``
    rather than coming back unchanged.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    _check_options(fmt, group_size, double_quant)
    if isinstance(skip, str) or not all(isinstance(s, str) for s in skip):
        raise TypeError(f"skip must be a tuple of str, got {skip!r}")
    if isinstance(model, nn.Linear):
        return QuantLinear.from_linear(model, fmt, group_size, double_quant)
    targets = [(name, mod) for name, mod in model.named_modules()
               if isinstance(mod, nn.Linear) and not any(s in name for s in skip)]
    if not targets:
        raise ValueError(f"model ({type(model).__name__}) has no nn.Linear to quantize"
                         + (f" outside skip={skip}" if skip else ""))
    for name, mod in targets:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, QuantLinear.from_linear(mod, fmt, group_size, double_quant))
    return model


def model_nbytes(model: nn.Module) -> int:
    """Bytes of all parameters and buffers (each storage counted once)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    seen, total = set(), 0
    for t in list(model.parameters()) + list(model.buffers()):
        key = (t.untyped_storage().data_ptr(), t.dtype)
        if key in seen:
            continue
        seen.add(key)
        total += t.numel() * t.element_size()
    return total
