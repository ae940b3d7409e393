"""Attention: softmax, masks, scaled dot-product attention, multi-head / grouped-query attention.

Taught in book/01_transformer.md (the mechanism) and book/04_attention.md (GQA, MQA, KV cache).
Masks are boolean with True meaning "may attend", the convention of
``torch.nn.functional.scaled_dot_product_attention``.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn


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
    n_k = n_q if n_k is None else n_k
    if n_q < 0 or n_k < n_q:
        raise ValueError(f"causal_mask: need 0 <= n_q <= n_k, got n_q={n_q}, n_k={n_k}")
    q_pos = torch.arange(n_k - n_q, n_k, device=device)[:, None]
    return torch.arange(n_k, device=device)[None, :] <= q_pos


def padding_mask(lengths: torch.Tensor, n: int) -> torch.Tensor:
    """bool[B, 1, 1, n]: key j of sequence b is real (not padding) iff j < lengths[b]."""
    return (torch.arange(n, device=lengths.device)[None, :] < lengths[:, None])[:, None, None, :]


def scaled_dot_product_attention(q, k, v, mask=None, scale=None):
    """softmax(q k^T * scale + mask) v, returning ``(out, weights)``.

    q: (..., n_q, d), k: (..., n_k, d), v: (..., n_k, d_v); mask broadcastable to
    (..., n_q, n_k), bool, True = keep. ``scale`` defaults to 1/sqrt(d).
    """
    if q.dim() < 2 or k.dim() < 2 or v.dim() < 2:
        raise ValueError(f"attention: q, k, v need at least 2 dims (seq, dim), got "
                         f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"attention: q and k must share the last dim, got {q.shape[-1]} "
                         f"and {k.shape[-1]}")
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(f"attention: k and v must have the same length, got {k.shape[-2]} "
                         f"and {v.shape[-2]}")
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = (q @ k.transpose(-2, -1)) * scale  # (..., n_q, n_k)
    if mask is not None:
        if mask.dtype != torch.bool:
            raise ValueError(f"attention: mask must be bool (True = keep), got {mask.dtype}")
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = softmax(scores, dim=-1)
    return weights @ v, weights


def repeat_kv(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    """(B, n_kv, T, d) -> (B, n_kv * n_rep, T, d): each KV head serves n_rep query heads."""
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
        n_kv_heads = n_heads if n_kv_heads is None else n_kv_heads
        if n_heads < 1 or d_model % n_heads:
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
        if x.dim() != 3 or x.shape[-1] != self.d_model:
            raise ValueError(f"MultiHeadAttention: x must be (B, T, {self.d_model}), "
                             f"got {tuple(x.shape)}")
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
