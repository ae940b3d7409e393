"""NF4, QLoRA's 4-bit NormalFloat, and double quantization of its group scales.

Taught in book/03_quantization.md.

Pretrained weights are roughly normal, so NF4 puts its 16 levels at quantiles of N(0, 1)
(as in bitsandbytes' ``create_normal_map``): 8 positive levels at the quantiles
``linspace(offset, 0.5, 9)[:-1]``, 7 negative ones at ``linspace(offset, 0.5, 8)[:-1]``, an
exact zero, all divided by the largest so the levels span ``[-1, 1]``. The offset 0.9677083
is the mean of ``1 - 1/(2*15)`` and ``1 - 1/(2*16)``: the outermost quantile is pulled in
from 1 (where the normal quantile is infinite) by half a bin of a 15- or 16-bin grid.
A group of ``group_size`` consecutive weights (bitsandbytes and QLoRA call it a *block*) is
divided by its absmax and each value gets the nearest level's 4-bit index.

``block_size=`` still works as a keyword (DESIGN.md lists ``nf4_quantize(x, block_size=64)``)
but warns: the course calls a quantization group ``group_size`` everywhere, and keeps
``block_size`` for the context length. NaN or infinity in the weights raises ``ValueError``;
codes outside 0..15 and negative or non-finite scales raise ``ValueError`` too.
"""

from __future__ import annotations

import warnings

import torch

from .integer import absmax_quantize, check_finite, check_positive_int, check_tensor, dequantize

__all__ = [
    "NF4_LEVELS",
    "NF4_OFFSET",
    "double_dequantize",
    "double_quantize",
    "nf4_dequantize",
    "nf4_levels",
    "nf4_quantize",
    "scale_overhead_bits",
]

NF4_OFFSET = 0.9677083  # bitsandbytes' literal; 0.5 * ((1 - 1/30) + (1 - 1/32)) = 0.96770833...


def nf4_levels(offset: float = NF4_OFFSET) -> torch.Tensor:
    """The 16 NF4 levels (float64, ascending, exact 0 at index 7) from normal quantiles."""
    if isinstance(offset, bool) or not isinstance(offset, (int, float)):
        raise TypeError(f"offset must be a float, got {offset!r}")
    if not 0.5 < offset < 1:
        raise ValueError(f"offset must lie in (0.5, 1), got {offset}")
    pos = torch.special.ndtri(torch.linspace(offset, 0.5, 9, dtype=torch.float64)[:-1])  # 8
    neg = -torch.special.ndtri(torch.linspace(offset, 0.5, 8, dtype=torch.float64)[:-1])  # 7
    levels = torch.cat([neg, torch.zeros(1, dtype=torch.float64), pos]).sort().values
    return levels / levels.max()


NF4_LEVELS: tuple[float, ...] = tuple(nf4_levels().tolist())
_LEVELS32 = torch.tensor(NF4_LEVELS, dtype=torch.float32)
_MIDPOINTS = (_LEVELS32[1:] + _LEVELS32[:-1]) / 2  # decision boundaries between levels


def _group_size(group_size, block_size, default: int) -> int:
    """Resolve ``group_size`` and its deprecated alias ``block_size``."""
    if block_size is not None:
        if group_size is not None:
            raise TypeError("pass group_size only (block_size is its deprecated alias)")
        warnings.warn("block_size is deprecated here; call it group_size", DeprecationWarning,
                      stacklevel=3)
        group_size = block_size
    return check_positive_int(default if group_size is None else group_size, "group_size")


def _check_groups(x: torch.Tensor, group_size: int, name: str) -> None:
    if x.numel() % group_size:
        raise ValueError(f"group_size {group_size} does not divide the {x.numel()} elements of "
                         f"{name}")


def nf4_quantize(x: torch.Tensor, group_size: int | None = None, *,
                 block_size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Groupwise NF4 over the flattened tensor; returns ``(codes uint8 in 0..15, absmax fp32)``.

    ``codes`` has ``x``'s shape (pack them with :func:`pack_int4` to store 4 bits each);
    ``absmax`` has one entry per group of ``group_size`` (default 64) consecutive elements of
    ``x.flatten()``, so a group may span two rows when the row length is not a multiple.
    """
    group_size = _group_size(group_size, block_size, 64)
    check_finite(x)
    _check_groups(x, group_size, "x")
    groups = x.float().reshape(-1, group_size)  # (n_groups, group_size)
    absmax = groups.abs().amax(dim=1)
    safe = torch.where(absmax > 0, absmax, torch.ones_like(absmax))
    normalized = groups / safe[:, None]  # in [-1, 1]
    codes = torch.bucketize(normalized, _MIDPOINTS).to(torch.uint8)  # nearest level
    return codes.reshape(x.shape), absmax


def nf4_dequantize(codes: torch.Tensor, absmax: torch.Tensor, group_size: int | None = None,
                   *, block_size: int | None = None) -> torch.Tensor:
    """Inverse of :func:`nf4_quantize` (fp32, ``codes``' shape)."""
    group_size = _group_size(group_size, block_size, 64)
    check_tensor(codes, "codes", kind="int")
    check_finite(absmax, "absmax")
    _check_groups(codes, group_size, "codes")
    if int(codes.min()) < 0 or int(codes.max()) > 15:
        raise ValueError(f"codes must lie in 0..15 (NF4 indices), got values in "
                         f"[{int(codes.min())}, {int(codes.max())}]")
    if (absmax < 0).any():
        raise ValueError("absmax must be non-negative (a group's largest |weight|)")
    if absmax.numel() * group_size != codes.numel():
        raise ValueError(f"{absmax.numel()} absmax scales do not fit {codes.numel()} codes in "
                         f"groups of {group_size}")
    vals = _LEVELS32[codes.long()].reshape(-1, group_size) * absmax.float().reshape(-1, 1)
    return vals.reshape(codes.shape)


def double_quantize(absmax: torch.Tensor, group_size: int | None = None, *,
                    block_size: int | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Quantize the fp32 group scales themselves to 8 bits in groups of ``group_size`` (256).

    The scales are all positive, so their mean is subtracted first (as QLoRA does) and the
    centred values get symmetric int8 absmax quantization. QLoRA/bitsandbytes use an 8-bit
    float code for this second level; int8 absmax is a simplification with the same cost.
    Returns ``(q int8, scale2 fp32 per group, mean fp32)``; a short last group is zero-padded.
    """
    group_size = _group_size(group_size, block_size, 256)
    check_finite(absmax, "absmax")
    flat = absmax.float().reshape(-1)
    mean = flat.mean()
    centred = flat - mean
    pad = (-centred.numel()) % group_size
    centred = torch.cat([centred, centred.new_zeros(pad)])
    q, scale2 = absmax_quantize(centred, bits=8, group_size=group_size)
    return q, scale2, mean


def double_dequantize(q: torch.Tensor, scale2: torch.Tensor, mean: torch.Tensor,
                      n: int | None = None) -> torch.Tensor:
    """Recover the first-level scales (the first ``n`` of them) from :func:`double_quantize`."""
    check_finite(mean, "mean")
    if mean.numel() != 1:
        raise ValueError(f"mean must be one number, got shape {tuple(mean.shape)}")
    vals = dequantize(q, scale2) + mean
    if n is None:
        return vals
    check_positive_int(n, "n")
    if n > vals.numel():
        raise ValueError(f"n = {n} exceeds the {vals.numel()} stored scales")
    return vals[:n]


def scale_overhead_bits(group_size: int = 64, double: bool = False,
                        group_size2: int = 256) -> float:
    """Bits per parameter spent on scales: 32/64 = 0.5, or 8/64 + 32/(64*256) ~ 0.127."""
    check_positive_int(group_size, "group_size")
    check_positive_int(group_size2, "group_size2")
    if not isinstance(double, bool):
        raise TypeError(f"double must be a bool, got {double!r}")
    if not double:
        return 32 / group_size
    return 8 / group_size + 32 / (group_size * group_size2)
