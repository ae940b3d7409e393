"""Integer quantization: absmax (symmetric) and zero-point (asymmetric), int4 packing.

Taught in book/03_quantization.md.

"Quantization maps a set of high-precision floats to a set of lower-precision targets: from
the source and target ranges compute a scale factor, then map." For ``b`` bits:

* absmax: source range ``[-max|x|, max|x|]``, target ``[-(2**(b-1) - 1), 2**(b-1) - 1]``,
  ``scale = max|x| / (2**(b-1) - 1)``, ``q = round(x / scale)``, ``x_hat = q * scale``.
* zero-point: source ``[min(x, 0), max(x, 0)]``, target ``[0, 2**b - 1]``,
  ``scale = (max - min) / (2**b - 1)``, ``zero = round(-min / scale)``,
  ``q = clamp(round(x / scale) + zero)``, ``x_hat = (q - zero) * scale``.

Granularity: one scale for the whole tensor (``dim=None``), one per slice along ``dim``
(``dim`` is the axis the max is taken over: ``dim=1`` on an ``(out, in)`` weight gives one scale
per output channel), or one per group of ``group_size`` consecutive elements along ``dim``.
A scale tensor has the input's shape with ``dim`` shrunk to the number of groups (1 for
per-channel), so :func:`dequantize` can tell the grouping from the shapes alone.
"""

from __future__ import annotations

import torch

__all__ = [
    "absmax_quantize",
    "dequantize",
    "pack_int4",
    "quant_error",
    "unpack_int4",
    "zeropoint_quantize",
]


def check_bits(bits) -> int:
    if isinstance(bits, bool) or not isinstance(bits, int) or not 2 <= bits <= 8:
        raise ValueError(f"bits must be an integer in 2..8, got {bits!r}")
    return bits


def check_finite(x: torch.Tensor, what: str = "input") -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise ValueError(f"{what} must be a floating-point tensor, got {type(x).__name__}")
    if x.numel() == 0:
        raise ValueError(f"{what} is empty")
    if not torch.isfinite(x).all():
        raise ValueError(f"{what} contains NaN or infinity; quantizers need finite values")
    return x


def _grouped(x: torch.Tensor, dim: int | None, group_size: int | None) -> torch.Tensor:
    """View ``x`` as ``(..., n_groups, group_len)`` with the reduction axis last."""
    if dim is None and group_size is None:
        return x.reshape(1, -1)
    if x.ndim == 0:
        raise ValueError("per-channel or group quantization needs a tensor with at least 1 dim")
    if dim is None:
        dim = -1
    if not -x.ndim <= dim < x.ndim:
        raise ValueError(f"dim {dim} out of range for a {x.ndim}-d tensor")
    xt = x.movedim(dim, -1)  # (..., n)
    n = xt.shape[-1]
    if group_size is None:
        group_size = n
    if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1:
        raise ValueError(f"group_size must be a positive int, got {group_size!r}")
    if n % group_size:
        raise ValueError(f"group_size {group_size} does not divide the dimension of size {n}")
    return xt.reshape(*xt.shape[:-1], n // group_size, group_size)  # (..., n_groups, g)


def _ungroup_scale(s: torch.Tensor, x: torch.Tensor, dim, group_size) -> torch.Tensor:
    """Per-group statistic ``(..., n_groups, 1)`` -> x's shape with ``dim`` = n_groups."""
    if dim is None and group_size is None:
        return s.reshape(())
    return s.squeeze(-1).movedim(-1, -1 if dim is None else dim)


def _ungroup_values(qg: torch.Tensor, x: torch.Tensor, dim, group_size) -> torch.Tensor:
    """Inverse of :func:`_grouped` for the quantized values: back to x's shape."""
    if dim is None and group_size is None:
        return qg.reshape(x.shape)
    d = -1 if dim is None else dim
    return qg.reshape(x.movedim(d, -1).shape).movedim(-1, d)


def absmax_quantize(x: torch.Tensor, bits: int = 8, dim: int | None = None,
                    group_size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric quantization to ``bits``-bit signed integers; returns ``(q int8, scale fp32)``.

    ``q`` lies in ``[-(2**(bits-1) - 1), 2**(bits-1) - 1]`` (the most negative code is unused so
    the grid is symmetric and zero is exact). An all-zero group gets scale 0 and codes 0.
    """
    check_bits(bits)
    check_finite(x)
    qmax = 2 ** (bits - 1) - 1
    xg = _grouped(x.float(), dim, group_size)
    absmax = xg.abs().amax(dim=-1, keepdim=True)
    scale = absmax / qmax
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    qg = torch.round(xg / safe).clamp(-qmax, qmax).to(torch.int8)
    return _ungroup_values(qg, x, dim, group_size), _ungroup_scale(scale, x, dim, group_size)


def zeropoint_quantize(x: torch.Tensor, bits: int = 8, dim: int | None = None,
                       group_size: int | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Asymmetric quantization to ``[0, 2**bits - 1]``; returns ``(q uint8, scale, zero uint8)``.

    The range always includes 0 so that zero (padding, ReLU outputs) is represented exactly.
    """
    check_bits(bits)
    check_finite(x)
    levels = 2**bits - 1
    xg = _grouped(x.float(), dim, group_size)
    lo = xg.amin(dim=-1, keepdim=True).clamp(max=0)
    hi = xg.amax(dim=-1, keepdim=True).clamp(min=0)
    scale = (hi - lo) / levels
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    zero = torch.round(-lo / safe).clamp(0, levels)
    qg = (torch.round(xg / safe) + zero).clamp(0, levels).to(torch.uint8)
    return (_ungroup_values(qg, x, dim, group_size), _ungroup_scale(scale, x, dim, group_size),
            _ungroup_scale(zero.to(torch.uint8), x, dim, group_size))


def _expand(s: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Broadcast a per-tensor/channel/group statistic to ``shape`` (repeat along groups)."""
    if s.ndim == 0:
        return s
    if s.ndim != len(shape):
        raise ValueError(f"scale has {s.ndim} dims but the codes have {len(shape)}")
    for d, (ns, nq) in enumerate(zip(s.shape, shape, strict=True)):
        if ns not in (1, nq):
            if nq % ns:
                raise ValueError(f"scale size {ns} does not divide codes size {nq} in dim {d}")
            s = s.repeat_interleave(nq // ns, dim=d)
    return s


def dequantize(q: torch.Tensor, scale: torch.Tensor,
               zero: torch.Tensor | None = None) -> torch.Tensor:
    """Map integer codes back to floats: ``q * scale`` or ``(q - zero) * scale`` (fp32)."""
    qf = q.to(torch.float32)
    if zero is not None:
        qf = qf - _expand(zero.to(torch.float32), q.shape)
    return qf * _expand(scale.to(torch.float32), q.shape)


def quant_error(x: torch.Tensor, bits: int = 8, dim: int | None = None,
                group_size: int | None = None, scheme: str = "absmax") -> float:
    """Relative error ``||x - x_hat|| / ||x||`` of a quantize/dequantize round trip."""
    if scheme == "absmax":
        x_hat = dequantize(*absmax_quantize(x, bits, dim, group_size))
    elif scheme == "zeropoint":
        x_hat = dequantize(*zeropoint_quantize(x, bits, dim, group_size))
    else:
        raise ValueError(f"unknown scheme {scheme!r}; expected 'absmax' or 'zeropoint'")
    return float((x.float() - x_hat).norm() / x.float().norm().clamp(min=1e-30))


def pack_int4(q: torch.Tensor) -> torch.Tensor:
    """Pack 4-bit codes two per byte along the last dim: ``(..., n) -> (..., n // 2)`` uint8.

    Accepts signed codes in ``[-8, 7]`` (stored as two's-complement nibbles) or unsigned
    codes in ``[0, 15]``. Element ``2i`` goes to the low nibble, ``2i + 1`` to the high one.
    """
    if not isinstance(q, torch.Tensor) or q.is_floating_point() or q.dtype == torch.bool:
        raise ValueError("pack_int4 expects an integer tensor of 4-bit codes")
    if q.ndim == 0 or q.shape[-1] % 2:
        raise ValueError(f"last dim must be even to pack pairs, got shape {tuple(q.shape)}")
    qi = q.to(torch.int16)
    if qi.numel() and (qi.min() < -8 or qi.max() > 15):
        raise ValueError("4-bit codes must lie in [-8, 7] (signed) or [0, 15] (unsigned)")
    nib = qi & 0xF  # two's complement low nibble for negative codes
    return (nib[..., 0::2] | (nib[..., 1::2] << 4)).to(torch.uint8)


def unpack_int4(packed: torch.Tensor, signed: bool = True) -> torch.Tensor:
    """Inverse of :func:`pack_int4`: ``(..., n // 2)`` uint8 -> ``(..., n)`` int8."""
    if not isinstance(packed, torch.Tensor) or packed.dtype != torch.uint8:
        raise ValueError("unpack_int4 expects a uint8 tensor")
    p = packed.to(torch.int16)
    nib = torch.stack([p & 0xF, p >> 4], dim=-1)  # (..., n // 2, 2)
    if signed:
        nib = torch.where(nib >= 8, nib - 16, nib)
    return nib.reshape(*packed.shape[:-1], -1).to(torch.int8)
