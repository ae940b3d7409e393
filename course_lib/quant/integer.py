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

Bad input: wrong types raise ``TypeError`` and bad values ``ValueError``, each naming the
argument. NaN or infinity in ``x`` raises ``ValueError``: a NaN weight has no nearest code,
and a single one would poison its group's scale, so it never becomes a finite code silently.
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


def check_bits(bits, name: str = "bits") -> int:
    """``bits`` must be an int in 2..8 (1 bit leaves no level but 0 in a symmetric grid)."""
    if isinstance(bits, bool) or not isinstance(bits, int):
        raise TypeError(f"{name} must be an int, got {bits!r}")
    if not 2 <= bits <= 8:
        raise ValueError(f"{name} must lie in 2..8, got {bits}")
    return bits


def check_positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be positive, got {value}")
    return value


def check_tensor(x, name: str = "x", kind: str = "float") -> torch.Tensor:
    """A non-empty tensor of floating-point (``kind="float"``) or integer dtype."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if kind == "float" and not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if kind == "int" and (x.is_floating_point() or x.is_complex() or x.dtype == torch.bool):
        raise TypeError(f"{name} must be an integer tensor, got dtype {x.dtype}")
    if x.numel() == 0:
        raise ValueError(f"{name} is empty")
    return x


def check_finite(x, name: str = "x") -> torch.Tensor:
    check_tensor(x, name)
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinity; quantizers need finite values")
    return x


def _grouped(x: torch.Tensor, dim: int | None, group_size: int | None) -> torch.Tensor:
    """View ``x`` as ``(..., n_groups, group_len)`` with the reduction axis last."""
    if dim is not None and (isinstance(dim, bool) or not isinstance(dim, int)):
        raise TypeError(f"dim must be an int or None, got {dim!r}")
    if group_size is not None:
        check_positive_int(group_size, "group_size")
    if dim is None and group_size is None:
        return x.reshape(1, -1)
    if x.ndim == 0:
        raise ValueError("x must have at least 1 dim for per-channel or group quantization")
    if dim is None:
        dim = -1
    if not -x.ndim <= dim < x.ndim:
        raise ValueError(f"dim {dim} out of range for a {x.ndim}-d tensor")
    xt = x.movedim(dim, -1)  # (..., n)
    n = xt.shape[-1]
    if group_size is None:
        group_size = n
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
    if not torch.isfinite(scale).all():
        raise ValueError("x spans a range (max - min) too wide for float32")
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
        raise ValueError(f"scale has {s.ndim} dims but the codes q have {len(shape)}")
    for d, (ns, nq) in enumerate(zip(s.shape, shape, strict=True)):
        if ns not in (1, nq):
            if ns == 0 or nq % ns:
                raise ValueError(f"scale size {ns} does not divide the size {nq} of q in dim {d}")
            s = s.repeat_interleave(nq // ns, dim=d)
    return s


def dequantize(q: torch.Tensor, scale: torch.Tensor,
               zero: torch.Tensor | None = None) -> torch.Tensor:
    """Map integer codes back to floats: ``q * scale`` or ``(q - zero) * scale`` (fp32).

    ``scale`` (and ``zero``) must be finite: NaN scales raise ``ValueError`` rather than
    turning a whole group into NaN.
    """
    check_tensor(q, "q", kind="int")
    check_finite(scale, "scale")
    if zero is not None:
        check_tensor(zero, "zero", kind="int")
    qf = q.to(torch.float32)
    if zero is not None:
        qf = qf - _expand(zero.to(torch.float32), q.shape)
    return qf * _expand(scale.to(torch.float32), q.shape)


def quant_error(x: torch.Tensor, bits: int = 8, dim: int | None = None,
                group_size: int | None = None, scheme: str = "absmax") -> float:
    """Relative error ``||x - x_hat|| / ||x||`` of a quantize/dequantize round trip."""
    if not isinstance(scheme, str):
        raise TypeError(f"scheme must be a str, got {type(scheme).__name__}")
    if scheme == "absmax":
        x_hat = dequantize(*absmax_quantize(x, bits, dim, group_size))
    elif scheme == "zeropoint":
        x_hat = dequantize(*zeropoint_quantize(x, bits, dim, group_size))
    else:
        raise ValueError(f"unknown scheme {scheme!r}; expected 'absmax' or 'zeropoint'")
    return float((x.float() - x_hat).norm() / x.float().norm().clamp(min=1e-30))


def pack_int4(q: torch.Tensor, signed: bool | None = None) -> torch.Tensor:
    """Pack 4-bit codes two per byte along the last dim: ``(..., n) -> (..., n // 2)`` uint8.

    Signed codes lie in ``[-8, 7]`` (stored as two's-complement nibbles), unsigned ones in
    ``[0, 15]``; ``signed=None`` reads ``uint8`` codes as unsigned and every other integer
    dtype as signed, so ``[-8, 15]``, which is neither, raises. Element ``2i`` goes to the low
    nibble, ``2i + 1`` to the high one.
    """
    check_tensor(q, "q", kind="int")
    if signed is None:
        signed = q.dtype != torch.uint8
    elif not isinstance(signed, bool):
        raise TypeError(f"signed must be True, False or None, got {signed!r}")
    if q.ndim == 0 or q.shape[-1] % 2:
        raise ValueError(f"q's last dim must be even to pack pairs, got shape {tuple(q.shape)}")
    qi = q.to(torch.int16)
    lo, hi = (-8, 7) if signed else (0, 15)
    if qi.min() < lo or qi.max() > hi:
        kind = "signed" if signed else "unsigned"
        raise ValueError(f"q must hold {kind} 4-bit codes in [{lo}, {hi}], got values in "
                         f"[{int(qi.min())}, {int(qi.max())}]")
    nib = qi & 0xF  # two's complement low nibble for negative codes
    return (nib[..., 0::2] | (nib[..., 1::2] << 4)).to(torch.uint8)


def unpack_int4(packed: torch.Tensor, signed: bool = True) -> torch.Tensor:
    """Inverse of :func:`pack_int4`: ``(..., n // 2)`` uint8 -> ``(..., n)`` int8."""
    if not isinstance(packed, torch.Tensor) or packed.dtype != torch.uint8:
        raise TypeError(f"packed must be a uint8 tensor, got {getattr(packed, 'dtype', packed)!r}")
    if packed.numel() == 0 or packed.ndim == 0:
        raise ValueError(f"packed must be a non-empty tensor with a last dim, got shape "
                         f"{tuple(packed.shape)}")
    if not isinstance(signed, bool):
        raise TypeError(f"signed must be a bool, got {signed!r}")
    p = packed.to(torch.int16)
    nib = torch.stack([p & 0xF, p >> 4], dim=-1)  # (..., n // 2, 2)
    if signed:
        nib = torch.where(nib >= 8, nib - 16, nib)
    return nib.reshape(*packed.shape[:-1], -1).to(torch.int8)
