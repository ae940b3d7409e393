"""Activation outliers and LLM.int8()'s mixed-precision decomposition (Dettmers et al., 2022).

Taught in book/03_quantization.md.

``x @ w.T`` with ``x`` (tokens, in) and ``w`` (out, in). Vector-wise int8: one absmax scale
per row of ``x`` (token) and per row of ``w`` (output channel), an exact integer
accumulation, then an outer product of the scales. LLM.int8() first takes out the few input
features (columns of ``x``) where any value reaches the threshold (6.0 in the paper) and
multiplies those in high precision; everything else goes through int8. The paper (and
bitsandbytes) multiplies the outlier part in fp16 on a GPU; here it is fp32, because CPUs
multiply fp32 natively and the point is the decomposition, not the 16-bit arithmetic.

NaN or infinity in ``x`` or ``w`` raises ``ValueError`` (an int8 code cannot hold it).
"""

from __future__ import annotations

import torch

from .integer import absmax_quantize, check_finite

__all__ = ["int8_matmul", "llm_int8_matmul", "outlier_features"]


def _as_2d(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    check_finite(x, "x")
    check_finite(w, "w")
    if w.ndim != 2:
        raise ValueError(f"w must be a 2-D (out, in) weight, got shape {tuple(w.shape)}")
    if x.ndim == 0 or x.shape[-1] != w.shape[1]:
        raise ValueError(f"shapes do not match for x @ w.T: x {tuple(x.shape)}, w {tuple(w.shape)}")
    return x.reshape(-1, x.shape[-1])


def int8_matmul(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``x @ w.T`` with both operands quantized to int8 vector-wise (fp32 result)."""
    x2 = _as_2d(x, w)
    qx, sx = absmax_quantize(x2, bits=8, dim=1)  # (T, in), (T, 1): one scale per token
    qw, sw = absmax_quantize(w, bits=8, dim=1)  # (out, in), (out, 1): one per output channel
    # int8 x int8 products summed exactly, as an int32 accumulator would (float64 is exact here)
    acc = qx.double() @ qw.double().T  # (T, out)
    out = (acc * sx.double() * sw.double().T).float()
    return out.reshape(*x.shape[:-1], w.shape[0])


def outlier_features(x: torch.Tensor, threshold: float = 6.0) -> torch.Tensor:
    """Indices of the input features (last dim) where any ``|x| >= threshold``."""
    check_finite(x, "x")
    if x.ndim == 0:
        raise ValueError("x must have a last dim of features, got a 0-d tensor")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
        raise TypeError(f"threshold must be a number, got {threshold!r}")
    if not threshold > 0:
        raise ValueError(f"threshold must be positive, got {threshold}")
    hit = (x.abs() >= threshold).reshape(-1, x.shape[-1]).any(dim=0)
    return hit.nonzero().flatten()


def llm_int8_matmul(x: torch.Tensor, w: torch.Tensor, threshold: float = 6.0
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """LLM.int8(): outlier features in fp32, the rest in vector-wise int8.

    Returns ``(out, outlier_idx)``. (The paper keeps the outlier part in fp16; fp32 here,
    and the int8 part's result is fp32 too.)
    """
    x2 = _as_2d(x, w)
    idx = outlier_features(x2, threshold)
    mask = torch.zeros(x2.shape[1], dtype=torch.bool)
    mask[idx] = True
    out = x2[:, mask] @ w[:, mask].T  # (T, out), high precision, few columns
    if (~mask).any():
        out = out + int8_matmul(x2[:, ~mask], w[:, ~mask])
    return out.reshape(*x.shape[:-1], w.shape[0]), idx
