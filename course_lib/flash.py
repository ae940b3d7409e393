"""FlashAttention in plain torch: tiled, exact attention with an online softmax.

Taught in book/04_attention.md. The point of this module is the *algorithm* of Dao et al. 2022
("FlashAttention: Fast and Memory-Efficient Exact Attention with IO-Awareness"): attention
computed block by block so that the n x n score matrix never exists in memory, with a running
maximum and running sum that make the blockwise softmax exact. Written in Python it is slower
than a single fused kernel (every block is a separate torch call); its memory is the lesson.

Contents:
- ``online_softmax``: the running max / running sum trick on a vector, chunk by chunk.
- ``flash_attention``: forward and recomputation-based backward (a ``torch.autograd.Function``
  that saves only the output and the per-row logsumexp), causal masking with n_q != n_k,
  GQA/MQA inputs whose k/v have fewer heads.
- ``block_sizes`` and ``hbm_traffic``: the paper's block-size rule and IO model (Theorem 2).
- ``attention_flops``: the FLOPs of the two matmuls, for the roofline.

Measurement (peak memory, timing, the roofline's two roofs) lives in ``course_lib.measure``.
"""

from __future__ import annotations

import math
from numbers import Integral, Real

import torch

__all__ = [
    "online_softmax",
    "flash_attention",
    "block_sizes",
    "hbm_traffic",
    "attention_flops",
]


# --------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------
def _check_positive_int(name: str, value) -> None:
    """A count or size: a Python/NumPy integer (not a bool, not 2.0) that is at least 1."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be a positive int, got {value!r} ({type(value).__name__})")
    if value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value}")


def _check_tensor(name: str, t) -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if not t.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {t.dtype}")


def _check_qkv(q, k, v) -> int:
    """Validate q, k, v; return the GQA group size (query heads per k/v head, 1 if none)."""
    for name, t in (("q", q), ("k", k), ("v", v)):
        _check_tensor(name, t)
        if t.dim() < 2:
            raise ValueError(f"{name} must have shape (..., seq, dim), got rank {t.dim()}")
        if t.shape[-2] == 0:
            raise ValueError(f"{name} must hold at least one position, got shape {tuple(t.shape)}")
        if t.shape[-1] == 0:
            raise ValueError(f"{name} must have a head dim of at least 1, got {tuple(t.shape)}")
    if not (q.dtype == k.dtype == v.dtype):
        raise TypeError(f"q, k, v must share a dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    if not (q.device == k.device == v.device):
        raise ValueError(f"q, k, v must be on one device, got {q.device}, {k.device}, {v.device}")
    if not (q.dim() == k.dim() == v.dim()):
        raise ValueError(f"q, k, v must have the same rank, got {q.dim()}, {k.dim()}, {v.dim()}")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q and k head dims differ: {q.shape[-1]} vs {k.shape[-1]}")
    if k.shape[:-1] != v.shape[:-1]:
        raise ValueError(
            f"k and v must agree on all dims but the last: {tuple(k.shape)} vs {tuple(v.shape)}"
        )
    if q.shape[:-2] == k.shape[:-2]:
        return 1
    # Grouped-query attention: only the head dim (-3) may differ, and must divide evenly.
    if q.dim() >= 3 and q.shape[:-3] == k.shape[:-3]:
        hq, hk = q.shape[-3], k.shape[-3]
        if hk > 0 and hq % hk == 0:
            return hq // hk
        raise ValueError(
            f"batch dims of q {tuple(q.shape[:-2])} and k/v {tuple(k.shape[:-2])} do not match:"
            f" q has {hq} heads (dim -3) and k/v have {hk}; for GQA the query heads must be a"
            " multiple of the key/value heads"
        )
    raise ValueError(
        f"batch dims of q {tuple(q.shape[:-2])} and k/v {tuple(k.shape[:-2])} do not match"
    )


# --------------------------------------------------------------------------------------------
# Online softmax
# --------------------------------------------------------------------------------------------
def _subtractable_max(m: torch.Tensor) -> torch.Tensor:
    """The running max to subtract before exp, with -inf (only masked entries seen so far) as 0.

    A row whose tiles so far are all -inf (left padding, a masked prefix) has m = -inf, and
    exp(-inf - (-inf)) is NaN: subtracting 0 instead gives exp(-inf) = 0 for both the tile and
    the rescale of the (still zero) sum. Only -inf is replaced, so a NaN or +inf still makes
    the row NaN, as in ``torch.softmax``.
    """
    return m.masked_fill(m == -math.inf, 0.0)


def online_softmax(x: torch.Tensor, tile_size: int) -> tuple[torch.Tensor, list[tuple]]:
    """Softmax over the last dim of ``x``, reading it ``tile_size`` entries at a time.

    Keeps only a running maximum ``m`` and a running sum ``l = sum(exp(x_seen - m))``. When a
    new tile raises the maximum from ``m_old`` to ``m_new``, the old sum is rescaled by
    ``exp(m_old - m_new)``, so after the last tile ``l`` equals the full denominator.
    Returns ``(probs, history)`` where history holds ``(m, l)`` after each tile; a tile of
    only -inf (masked) entries leaves ``(-inf, 0)``. A NaN anywhere in a row, or a row that
    is all -inf, makes that row's probabilities NaN, as ``torch.softmax`` does.
    Taught in book/04_attention.md.
    """
    _check_tensor("x", x)
    _check_positive_int("tile_size", tile_size)
    if x.dim() < 1 or x.shape[-1] == 0:
        raise ValueError(f"x must have a non-empty last dimension, got shape {tuple(x.shape)}")
    m = torch.full(x.shape[:-1], -math.inf, dtype=x.dtype, device=x.device)
    l = torch.zeros(x.shape[:-1], dtype=x.dtype, device=x.device)
    history = []
    for start in range(0, x.shape[-1], tile_size):
        tile = x[..., start : start + tile_size]
        m_new = torch.maximum(m, tile.amax(-1))  # amax and maximum both propagate NaN
        m_ref = _subtractable_max(m_new)  # -inf - (-inf) would turn a masked tile into NaN
        l = l * torch.exp(m - m_ref) + torch.exp(tile - m_ref[..., None]).sum(-1)
        m = m_new
        history.append((m.clone(), l.clone()))
    # The second pass only needs the two scalars per row: exp(x - m) / l.
    return torch.exp(x - m[..., None]) / l[..., None], history


# --------------------------------------------------------------------------------------------
# Forward and backward over tiles
# --------------------------------------------------------------------------------------------
def _block_mask(i0, i1, j0, j1, offset, device):
    """True where query i (absolute position i + offset) may see key j, for one tile."""
    rows = torch.arange(i0, i1, device=device)[:, None] + offset
    cols = torch.arange(j0, j1, device=device)[None, :]
    return cols <= rows


def _forward(q, k, v, causal, block_q, block_k, scale):
    """Return (out, lse) with lse = logsumexp of each row's scaled scores."""
    acc_dtype = torch.promote_types(q.dtype, torch.float32)  # bf16/fp16 accumulate in fp32
    n_q, n_k = q.shape[-2], k.shape[-2]
    offset = n_k - n_q  # queries are the last n_q positions
    batch = torch.broadcast_shapes(q.shape[:-2], k.shape[:-2])
    out = torch.zeros(*batch, n_q, v.shape[-1], dtype=acc_dtype, device=q.device)
    lse = torch.full((*batch, n_q), -math.inf, dtype=acc_dtype, device=q.device)
    for i0 in range(0, n_q, block_q):
        i1 = min(i0 + block_q, n_q)
        q_blk = q[..., i0:i1, :].to(acc_dtype) * scale  # (..., Br, d)
        k_end = min(n_k, i1 + offset) if causal else n_k  # later keys are all masked
        m = torch.full((*batch, i1 - i0), -math.inf, dtype=acc_dtype, device=q.device)
        l = torch.zeros_like(m)
        acc = torch.zeros(*batch, i1 - i0, v.shape[-1], dtype=acc_dtype, device=q.device)
        for j0 in range(0, max(k_end, 0), block_k):
            j1 = min(j0 + block_k, k_end)
            s = q_blk @ k[..., j0:j1, :].to(acc_dtype).transpose(-1, -2)  # (..., Br, Bc)
            if causal and j1 - 1 > i0 + offset:  # the tile crosses the diagonal
                s = s.masked_fill(~_block_mask(i0, i1, j0, j1, offset, q.device), -math.inf)
            m_new = torch.maximum(m, s.amax(-1))
            m_safe = _subtractable_max(m_new)  # rows that have seen only masked keys so far
            p = torch.exp(s - m_safe[..., None])  # (..., Br, Bc)
            rescale = torch.exp(m - m_safe)  # shrinks the old sum when the max grows
            l = rescale * l + p.sum(-1)
            acc = rescale[..., None] * acc + p @ v[..., j0:j1, :].to(acc_dtype)
            m = m_new
        # l == 0 only for a query that may see no key (n_q > n_k, causal): it gets zeros.
        # A NaN anywhere in the row's inputs left m and l NaN, and NaN flows to the output.
        empty = l == 0
        out[..., i0:i1, :] = torch.where(empty[..., None], 0.0, acc / l[..., None])
        lse[..., i0:i1] = torch.where(empty, -math.inf, m + torch.log(l))
    return out.to(q.dtype), lse


def _backward(q, k, v, out, lse, d_out, causal, block_q, block_k, scale):
    """Gradients by recomputing each tile's probabilities from q, k and the saved lse."""
    acc_dtype = lse.dtype
    n_q, n_k = q.shape[-2], k.shape[-2]
    offset = n_k - n_q
    d_out = d_out.to(acc_dtype)
    # D_i = sum_j P_ij dP_ij = rowsum(dO * O): the softmax Jacobian's correction term.
    delta = (d_out * out.to(acc_dtype)).sum(-1)  # (..., n_q)
    lse = lse.masked_fill(torch.isinf(lse), math.inf)  # rows that saw no key get P = 0
    dq = torch.zeros(q.shape, dtype=acc_dtype, device=q.device)
    dk = torch.zeros(k.shape, dtype=acc_dtype, device=q.device)
    dv = torch.zeros(v.shape, dtype=acc_dtype, device=q.device)
    for j0 in range(0, n_k, block_k):
        j1 = min(j0 + block_k, n_k)
        k_blk = k[..., j0:j1, :].to(acc_dtype)  # (..., Bc, d), broadcast over GQA groups
        v_blk = v[..., j0:j1, :].to(acc_dtype)
        dk_blk = torch.zeros_like(k_blk)
        dv_blk = torch.zeros_like(v_blk)
        for i0 in range(0, n_q, block_q):
            i1 = min(i0 + block_q, n_q)
            if causal and i1 - 1 + offset < j0:  # no query of this tile sees these keys
                continue
            q_blk = q[..., i0:i1, :].to(acc_dtype)
            s = (q_blk @ k_blk.transpose(-1, -2)) * scale  # (..., Br, Bc), recomputed
            if causal and j1 - 1 > i0 + offset:
                s = s.masked_fill(~_block_mask(i0, i1, j0, j1, offset, q.device), -math.inf)
            p = torch.exp(s - lse[..., i0:i1, None])  # exact probabilities, no renormalising
            do_blk = d_out[..., i0:i1, :]
            dv_blk += (p.transpose(-1, -2) @ do_blk).sum_to_size(dv_blk.shape)
            dp = do_blk @ v_blk.transpose(-1, -2)
            ds = p * (dp - delta[..., i0:i1, None]) * scale
            dq[..., i0:i1, :] += ds @ k_blk
            dk_blk += (ds.transpose(-1, -2) @ q_blk).sum_to_size(dk_blk.shape)
        dk[..., j0:j1, :] = dk_blk
        dv[..., j0:j1, :] = dv_blk
    return dq.to(q.dtype), dk.to(k.dtype), dv.to(v.dtype)


class _FlashAttentionFunction(torch.autograd.Function):
    """Saves q, k, v, out and the row logsumexp (O(n) extra); never the n x n matrix."""

    @staticmethod
    def forward(ctx, q, k, v, causal, block_q, block_k, scale):
        out, lse = _forward(q, k, v, causal, block_q, block_k, scale)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.config = (causal, block_q, block_k, scale)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, d_out):
        q, k, v, out, lse = ctx.saved_tensors
        dq, dk, dv = _backward(q, k, v, out, lse, d_out, *ctx.config)
        return dq, dk, dv, None, None, None, None


def flash_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    causal: bool = False,
    block_q: int = 64,
    block_k: int = 64,
    *,
    scale: float | None = None,
) -> torch.Tensor:
    """Exact softmax(q k^T * scale) v, computed in (block_q x block_k) tiles.

    Shapes: q ``(..., n_q, d)``, k ``(..., n_k, d)``, v ``(..., n_k, d_v)``; returns
    ``(..., n_q, d_v)``. ``causal=True`` lets query i see keys up to its own position, where
    the queries are the *last* n_q of the n_k positions (as in ``attention.causal_mask`` and
    in cached decoding); a query that sees no key (only possible when n_q > n_k) gets zeros,
    as torch's SDPA gives for a fully masked row. A NaN in q, or in a key or value that a
    query may see, makes that query's output NaN (a masked value row can also reach queries
    in the same tile, through 0 * NaN, as in torch's kernels); NaN never turns into a number.
    If k and v have fewer heads (dim -3) than q, each k/v head serves ``n_q_heads / n_kv_heads``
    consecutive query heads (GQA; MQA with one k/v head). ``scale`` defaults to 1/sqrt(d).
    Differentiable: the backward pass recomputes each tile from the saved logsumexp.
    Taught in book/04_attention.md.
    """
    if not isinstance(causal, bool):
        raise TypeError(f"causal must be a bool, got {causal!r} ({type(causal).__name__})")
    _check_positive_int("block_q", block_q)
    _check_positive_int("block_k", block_k)
    group = _check_qkv(q, k, v)
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[-1])
    elif isinstance(scale, bool) or not isinstance(scale, Real):
        raise TypeError(f"scale must be a real number, got {scale!r} ({type(scale).__name__})")
    elif not math.isfinite(scale):
        raise ValueError(f"scale must be finite, got {scale}")
    if group > 1:  # (..., Hkv*g, n, d) -> (..., Hkv, g, n, d); k/v broadcast over g
        q = q.unflatten(-3, (k.shape[-3], group))
        k, v = k.unsqueeze(-3), v.unsqueeze(-3)
    out = _FlashAttentionFunction.apply(q, k, v, causal, block_q, block_k, float(scale))
    return out.flatten(-4, -3) if group > 1 else out


# --------------------------------------------------------------------------------------------
# The paper's IO model
# --------------------------------------------------------------------------------------------
def block_sizes(sram_bytes: int, d: int, bytes_per_el: int = 4) -> tuple[int, int]:
    """Algorithm 1's tile sizes for on-chip memory of M elements: (B_r, B_c).

    B_c = ceil(M / 4d) and B_r = min(ceil(M / 4d), d): the four tiles Q_i, K_j, V_j, O_i of
    about M/4 elements each fit on chip together. Taught in book/04_attention.md.
    """
    _check_positive_int("sram_bytes", sram_bytes)
    _check_positive_int("d", d)
    _check_positive_int("bytes_per_el", bytes_per_el)
    m_elems = sram_bytes // bytes_per_el
    if m_elems < d:
        raise ValueError(
            f"sram_bytes={sram_bytes} holds {m_elems} elements, not one row of dimension d={d}"
            " (SRAM cannot hold a row)"
        )
    block_c = math.ceil(m_elems / (4 * d))
    return min(block_c, d), block_c


def hbm_traffic(
    n: int,
    d: int,
    sram_bytes: int,
    method: str,
    bytes_per_el: int = 4,
    *,
    blocks: tuple[int, int] | None = None,
) -> int:
    """HBM element reads plus writes for one (non-causal) attention head of length n.

    ``"standard"`` (the paper's Algorithm 0, one kernel per step): read Q, K (2nd), write
    S (n^2); read S, write P (2n^2); read P and V, write O (n^2 + 2nd). Total 4nd + 4n^2,
    which is Theta(nd + n^2) and does not depend on the SRAM size.

    ``"flash"`` (Algorithm 1, K/V outer loop): initialise O, l, m (nd + 2n); each of the
    T_c = ceil(n / B_c) outer steps reads K_j, V_j once (2nd over all j) and, for every query
    tile, reads Q_i, O_i, l_i, m_i and writes O_i, l_i, m_i (n(3d + 4) per outer step).
    Total 3nd + 2n + T_c n (3d + 4), about 12 n^2 d^2 / M: Theta(n^2 d^2 / M).

    ``"flash2"`` (query outer loop, as ``flash_attention`` here, FlashAttention-2 and torch's
    CPU kernel): read Q once, K and V once per query tile, write O and the logsumexp once:
    2nd + 2nd T_r + n with T_r = ceil(n / B_r).

    ``blocks=(B_r, B_c)`` replaces the paper's rule (``block_sizes(sram_bytes, d)``), to place
    a kernel that picks its own tiles. Tests hold each count to an instrumented loop.
    Taught in book/04_attention.md.
    """
    _check_positive_int("n", n)
    _check_positive_int("d", d)
    _check_positive_int("sram_bytes", sram_bytes)
    _check_positive_int("bytes_per_el", bytes_per_el)
    if not isinstance(method, str):
        raise TypeError(f"method must be a str, got {type(method).__name__}")
    if method not in ("standard", "flash", "flash2"):
        raise ValueError(f"method must be 'standard', 'flash' or 'flash2', got {method!r}")
    if method == "standard":  # no tiles: the SRAM size does not enter
        return 4 * n * d + 4 * n * n
    if blocks is None:
        block_r, block_c = block_sizes(sram_bytes, d, bytes_per_el)
    else:
        if not isinstance(blocks, tuple) or len(blocks) != 2:
            raise TypeError(f"blocks must be a (B_r, B_c) tuple of ints, got {blocks!r}")
        block_r, block_c = blocks
        _check_positive_int("blocks[0] (B_r)", block_r)
        _check_positive_int("blocks[1] (B_c)", block_c)
    if method == "flash":
        t_c = math.ceil(n / block_c)
        return 3 * n * d + 2 * n + t_c * n * (3 * d + 4)
    t_r = math.ceil(n / block_r)
    return 2 * n * d + 2 * n * d * t_r + n


def attention_flops(n_q: int, n_k: int, d: int, causal: bool = False) -> int:
    """Multiply-add FLOPs of the two matmuls (QK^T and PV): 4 n_q n_k d, halved if causal.

    Taught in book/04_attention.md (the roofline).
    """
    _check_positive_int("n_q", n_q)
    _check_positive_int("n_k", n_k)
    _check_positive_int("d", d)
    if not isinstance(causal, bool):
        raise TypeError(f"causal must be a bool, got {causal!r} ({type(causal).__name__})")
    flops = 4 * n_q * n_k * d
    return flops // 2 if causal else flops
