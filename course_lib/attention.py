"""Attention: softmax, masks, scaled dot-product attention, multi-head / grouped-query attention.

Taught in book/01_transformer.md (the mechanism) and book/04_attention.md (GQA, MQA, KV cache).
Masks are boolean with True meaning "may attend", the convention of
``torch.nn.functional.scaled_dot_product_attention``.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from ._checks import check_float, check_int, check_tensor


def softmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """exp(x_i) / sum_j exp(x_j), computed stably by subtracting the max first.

    A row that is all -inf (a query that may attend to nothing) gives zeros, not NaN.
    """
    # The shift is a constant: no gradient flows through it. Take the max of a
    # detached x; x.amax(...).detach() would still record an amax node that
    # saves all of x (every score) for a backward that never runs.
    m = x.detach().amax(dim=dim, keepdim=True)
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    e = torch.exp(x - m)
    s = e.sum(dim=dim, keepdim=True)
    return e / torch.where(s > 0, s, torch.ones_like(s))


def causal_mask(n_q: int, n_k: int | None = None, device=None) -> torch.Tensor:
    """bool[n_q, n_k]: query i may attend to key j iff j <= i + (n_k - n_q).

    With n_k > n_q the queries are the *last* n_q positions, as when decoding with a KV cache.
    """
    n_q = check_int("causal_mask", "n_q", n_q, low=0)
    n_k = n_q if n_k is None else check_int("causal_mask", "n_k", n_k, low=0)
    if n_k < n_q:
        raise ValueError(f"causal_mask: need 0 <= n_q <= n_k, got n_q={n_q}, n_k={n_k}")
    q_pos = torch.arange(n_k - n_q, n_k, device=device)[:, None]
    return torch.arange(n_k, device=device)[None, :] <= q_pos


def padding_mask(lengths: torch.Tensor, n: int) -> torch.Tensor:
    """bool[B, 1, 1, n]: key j of sequence b is real (not padding) iff j < lengths[b]."""
    check_tensor("padding_mask", "lengths", lengths, floating=False, dims=(1,))
    n = check_int("padding_mask", "n", n, low=0)
    if lengths.numel() and (lengths.min() < 0 or lengths.max() > n):
        raise ValueError(f"padding_mask: lengths must lie in [0, n={n}], got "
                         f"{lengths.min().item()}..{lengths.max().item()}")
    return (torch.arange(n, device=lengths.device)[None, :] < lengths[:, None])[:, None, None, :]


def scaled_dot_product_attention(q, k, v, mask=None, scale=None):
    """softmax(q k^T * scale + mask) v, returning ``(out, weights)``.

    q: (..., n_q, d), k: (..., n_k, d), v: (..., n_k, d_v); mask broadcastable to
    (..., n_q, n_k), bool, True = keep. ``scale`` defaults to 1/sqrt(d).
    """
    for name, t in (("q", q), ("k", k), ("v", v)):
        check_tensor("attention", name, t, floating=True)
    if q.dim() < 2 or k.dim() < 2 or v.dim() < 2:
        raise ValueError(f"attention: q, k, v need at least 2 dims (seq, dim), got "
                         f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    if not q.dtype == k.dtype == v.dtype:
        raise TypeError(f"attention: q, k, v must share a dtype, got {q.dtype}, {k.dtype}, "
                        f"{v.dtype}")
    if q.shape[-1] == 0:
        raise ValueError("attention: head dim of q and k must be >= 1, got 0")
    if k.shape[-2] == 0:
        raise ValueError("attention: k and v are empty (0 keys): nothing to attend to")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"attention: q and k must share the last dim, got {q.shape[-1]} "
                         f"and {k.shape[-1]}")
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(f"attention: k and v must have the same length, got {k.shape[-2]} "
                         f"and {v.shape[-2]}")
    try:
        batch = torch.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    except RuntimeError:
        raise ValueError(f"attention: the leading (batch, head) dims of q, k, v do not "
                         f"broadcast: {tuple(q.shape)}, {tuple(k.shape)}, "
                         f"{tuple(v.shape)}") from None
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[-1])
    else:
        scale = check_float("attention", "scale", scale)
    if mask is not None:
        if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
            raise ValueError(f"attention: mask must be bool (True = keep), got "
                             f"{getattr(mask, 'dtype', type(mask).__name__)}")
        try:
            torch.broadcast_shapes(mask.shape, (*batch, q.shape[-2], k.shape[-2]))
        except RuntimeError:
            raise ValueError(f"attention: mask of shape {tuple(mask.shape)} does not broadcast "
                             f"to the scores' {(*batch, q.shape[-2], k.shape[-2])}") from None
    scores = (q @ k.transpose(-2, -1)) * scale  # (..., n_q, n_k)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = softmax(scores, dim=-1)
    return weights @ v, weights


def repeat_kv(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    """(B, n_kv, T, d) -> (B, n_kv * n_rep, T, d): each KV head serves n_rep query heads."""
    n_rep = check_int("repeat_kv", "n_rep", n_rep, low=1)
    check_tensor("repeat_kv", "x", x, dims=(4,))
    if n_rep == 1:
        return x
    b, n_kv, t, d = x.shape
    return x[:, :, None].expand(b, n_kv, n_rep, t, d).reshape(b, n_kv * n_rep, t, d)


class KVCache:
    """Keys and values of the tokens seen so far, one layer's worth: (B, n_kv_heads, T, d)."""

    def __init__(self):
        self.k: torch.Tensor | None = None
        self.v: torch.Tensor | None = None

    def __len__(self) -> int:
        return 0 if self.k is None else self.k.shape[-2]

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        check_tensor("KVCache.append", "k", k, floating=True, dims=(4,))
        check_tensor("KVCache.append", "v", v, floating=True, dims=(4,))
        if k.shape[:-1] != v.shape[:-1]:
            raise ValueError(f"KVCache.append: k and v must match in (B, heads, T), got "
                             f"{tuple(k.shape)} and {tuple(v.shape)}")
        if self.k is not None and (k.shape[:2] != self.k.shape[:2]
                                   or k.shape[-1] != self.k.shape[-1]
                                   or v.shape[-1] != self.v.shape[-1]):
            raise ValueError(f"KVCache.append: k {tuple(k.shape)} does not continue the "
                             f"cached {tuple(self.k.shape)} (same B, heads and head dim)")
        self.k = k if self.k is None else torch.cat([self.k, k], dim=-2)
        self.v = v if self.v is None else torch.cat([self.v, v], dim=-2)
        return self.k, self.v

    def nbytes(self) -> int:
        if self.k is None:
            return 0
        return self.k.numel() * self.k.element_size() + self.v.numel() * self.v.element_size()


class MultiHeadAttention(nn.Module):
    """Multi-head attention with ``n_kv_heads`` key/value heads.

    n_kv_heads == n_heads is MHA, 1 is MQA, anything in between that divides n_heads is GQA
    (Ainslie et al. 2023). With ``context`` the keys and values come from it (cross-attention).
    """

    def __init__(self, d_model: int, n_heads: int, n_kv_heads: int | None = None,
                 bias: bool = True):
        super().__init__()
        d_model = check_int("MultiHeadAttention", "d_model", d_model, low=1)
        n_heads = check_int("MultiHeadAttention", "n_heads", n_heads, low=1)
        n_kv_heads = n_heads if n_kv_heads is None else \
            check_int("MultiHeadAttention", "n_kv_heads", n_kv_heads, low=1)
        if not isinstance(bias, bool):
            raise TypeError(f"MultiHeadAttention: bias must be a bool, got {bias!r}")
        if d_model % n_heads:
            raise ValueError(f"MultiHeadAttention: n_heads={n_heads} must divide "
                             f"d_model={d_model}")
        if n_kv_heads < 1 or n_heads % n_kv_heads:
            raise ValueError(f"MultiHeadAttention: n_kv_heads={n_kv_heads} must divide "
                             f"n_heads={n_heads}")
        self.d_model, self.n_heads, self.n_kv_heads = d_model, n_heads, n_kv_heads
        self.head_dim = d_model // n_heads
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.k_proj = nn.Linear(d_model, n_kv_heads * self.head_dim, bias=bias)
        self.v_proj = nn.Linear(d_model, n_kv_heads * self.head_dim, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)

    def _heads(self, x: torch.Tensor, n: int) -> torch.Tensor:
        b, t, _ = x.shape
        return x.view(b, t, n, self.head_dim).transpose(1, 2)  # (B, n, T, hd)

    def forward(self, x, mask=None, kv_cache: KVCache | None = None, context=None,
                need_weights: bool = False):
        check_tensor("MultiHeadAttention", "x", x, floating=True)
        if x.dim() != 3 or x.shape[-1] != self.d_model:
            raise ValueError(f"MultiHeadAttention: x must be (B, T, {self.d_model}), "
                             f"got {tuple(x.shape)}")
        if context is not None:
            check_tensor("MultiHeadAttention", "context", context, floating=True)
            if context.dim() != 3 or context.shape[0] != x.shape[0] \
                    or context.shape[-1] != self.d_model:
                raise ValueError(f"MultiHeadAttention: context must be ({x.shape[0]}, S, "
                                 f"{self.d_model}), got {tuple(context.shape)}")
        src = x if context is None else context
        b, t, _ = x.shape
        q = self._heads(self.q_proj(x), self.n_heads)          # (B, nh, T, hd)
        k = self._heads(self.k_proj(src), self.n_kv_heads)     # (B, nkv, S, hd)
        v = self._heads(self.v_proj(src), self.n_kv_heads)     # (B, nkv, S, hd)
        if kv_cache is not None:
            k, v = kv_cache.append(k, v)                       # (B, nkv, past + S, hd)
        rep = self.n_heads // self.n_kv_heads
        out, weights = scaled_dot_product_attention(q, repeat_kv(k, rep), repeat_kv(v, rep), mask)
        out = out.transpose(1, 2).reshape(b, t, self.d_model)  # (B, T, C)
        out = self.out_proj(out)
        return (out, weights) if need_weights else out
