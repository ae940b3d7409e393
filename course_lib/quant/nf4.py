"""NF4, QLoRA's 4-bit NormalFloat, and double quantization of its block scales.

Taught in book/03_quantization.md.

Pretrained weights are roughly normal, so NF4 puts its 16 levels at quantiles of N(0, 1)
(as in bitsandbytes' ``create_normal_map``): 8 positive levels at the quantiles
``linspace(offset, 0.5, 9)[:-1]``, 7 negative ones at ``linspace(offset, 0.5, 8)[:-1]``, an
exact zero, all divided by the largest so the levels span ``[-1, 1]``. The offset 0.9677083
is the mean of ``1 - 1/(2*15)`` and ``1 - 1/(2*16)``: the outermost quantile is pulled in
from 1 (where the normal quantile is infinite) by half a bin of a 15- or 16-bin grid.
A block of ``block_size`` weights is divided by its absmax and each value gets the nearest
level's 4-bit index.
"""

from __future__ import annotations

import torch

from .integer import absmax_quantize, check_finite, dequantize

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
    if not 0.5 < offset < 1:
        raise ValueError(f"offset must lie in (0.5, 1), got {offset}")
    pos = torch.special.ndtri(torch.linspace(offset, 0.5, 9, dtype=torch.float64)[:-1])  # 8
    neg = -torch.special.ndtri(torch.linspace(offset, 0.5, 8, dtype=torch.float64)[:-1])  # 7
    levels = torch.cat([neg, torch.zeros(1, dtype=torch.float64), pos]).sort().values
    return levels / levels.max()


NF4_LEVELS: tuple[float, ...] = tuple(nf4_levels().tolist())
_LEVELS32 = torch.tensor(NF4_LEVELS, dtype=torch.float32)
_MIDPOINTS = (_LEVELS32[1:] + _LEVELS32[:-1]) / 2  # decision boundaries between levels


def _check_block(x: torch.Tensor, block_size) -> None:
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
        raise ValueError(f"block_size must be a positive int, got {block_size!r}")
    if x.numel() % block_size:
        raise ValueError(f"block_size {block_size} does not divide the {x.numel()} elements")


def nf4_quantize(x: torch.Tensor, block_size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Blockwise NF4 over the flattened tensor; returns ``(codes uint8 in 0..15, absmax fp32)``.

    ``codes`` has ``x``'s shape (pack them with :func:`pack_int4` to store 4 bits each);
    ``absmax`` has one entry per block of ``block_size`` consecutive elements.
    """
    check_finite(x)
    _check_block(x, block_size)
    blocks = x.float().reshape(-1, block_size)  # (n_blocks, block_size)
    absmax = blocks.abs().amax(dim=1)
    safe = torch.where(absmax > 0, absmax, torch.ones_like(absmax))
    normalized = blocks / safe[:, None]  # in [-1, 1]
    codes = torch.bucketize(normalized, _MIDPOINTS).to(torch.uint8)  # nearest level
    return codes.reshape(x.shape), absmax


def nf4_dequantize(codes: torch.Tensor, absmax: torch.Tensor, block_size: int = 64) -> torch.Tensor:
    """Inverse of :func:`nf4_quantize` (fp32, ``codes``' shape)."""
    _check_block(codes, block_size)
    if absmax.numel() * block_size != codes.numel():
        raise ValueError(f"{absmax.numel()} scales do not fit {codes.numel()} codes in blocks "
                         f"of {block_size}")
    vals = _LEVELS32[codes.long()].reshape(-1, block_size) * absmax.float().reshape(-1, 1)
    return vals.reshape(codes.shape)


def double_quantize(absmax: torch.Tensor, block_size: int = 256
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Quantize the fp32 block scales themselves to 8 bits in blocks of ``block_size``.

    The scales are all positive, so their mean is subtracted first (as QLoRA does) and the
    centred values get symmetric int8 absmax quantization. QLoRA/bitsandbytes use an 8-bit
    float code for this second level; int8 absmax is a simplification with the same cost.
    Returns ``(q int8, scale2 fp32 per block, mean fp32)``; a short last block is zero-padded.
    """
    check_finite(absmax, "absmax")
    flat = absmax.float().reshape(-1)
    mean = flat.mean()
    centred = flat - mean
    pad = (-centred.numel()) % block_size
    centred = torch.cat([centred, centred.new_zeros(pad)])
    q, scale2 = absmax_quantize(centred, bits=8, group_size=block_size)
    return q, scale2, mean


def double_dequantize(q: torch.Tensor, scale2: torch.Tensor, mean: torch.Tensor,
                      n: int | None = None) -> torch.Tensor:
    """Recover the first-level scales (the first ``n`` of them) from :func:`double_quantize`."""
    vals = dequantize(q, scale2) + mean
    return vals if n is None else vals[:n]


def scale_overhead_bits(block_size: int = 64, double: bool = False,
                        block_size2: int = 256) -> float:
    """Bits per parameter spent on scales: 32/64 = 0.5, or 8/64 + 32/(64*256) ~ 0.127."""
    if not double:
        return 32 / block_size
    return 8 / block_size + 32 / (block_size * block_size2)
