"""Chapter 4 exercises: the online softmax, attention FLOPs, GQA's repeat_kv and saving."""

from __future__ import annotations

import torch

from course_lib.exercises import Case, Exercise, register
from course_lib.exercises._util import need_int, need_tensor, randn


def online_softmax(x: torch.Tensor, tile: int) -> torch.Tensor:
    """Softmax of a 1-D tensor read ``tile`` entries at a time, with a running max and sum."""
    need_tensor("x", x)
    need_int("tile", tile, low=1)
    m = torch.tensor(float("-inf"))
    s = torch.tensor(0.0)
    for start in range(0, x.numel(), tile):
        chunk = x[start:start + tile]
        m_new = torch.maximum(m, chunk.max())
        # a row that has seen only -inf (masked keys) so far: subtract 0, not -inf - -inf = NaN
        shift = torch.where(m_new == float("-inf"), 0.0, m_new)
        s = s * torch.exp(m - shift) + torch.exp(chunk - shift).sum()   # rescale the old sum
        m = m_new
    return torch.exp(x - m) / s


register(Exercise(
    id="ch4.online_softmax", title="The online softmax", kind="function",
    section="04_attention.md",
    prompt=("Write online_softmax(x, tile) for a 1-D tensor: one pass over x in tiles of "
            "`tile` entries that keeps a running maximum m and a running sum s of exp(x - m); "
            "when m grows, rescale s. Then return exp(x - m) / s. It must equal "
            "torch.softmax(x, 0). Raise ValueError for tile < 1."),
    hint=("When the max moves from m to m_new, the old sum must be multiplied by "
          "exp(m - m_new). While every score so far is -inf (masked), m - m_new is "
          "-inf - (-inf) = NaN: subtract 0 instead."),
    reference=online_softmax, atol=1e-6, rtol=1e-5,
    cases=lambda: [
        Case((torch.tensor([1.0, 2.0, 3.0, 4.0]), 1), note="an increasing row, tile 1"),
        Case((torch.tensor([4.0, 3.0, 2.0, 1.0]), 2), note="a decreasing row"),
        Case((randn(10, seed=7, scale=5.0), 3), note="tiles that do not divide the length"),
        Case((randn(8, seed=8), 8), note="one tile"),
        Case((torch.tensor([100.0, 101.0, 99.0, 102.0]), 2), note="large scores"),
        Case((torch.tensor([float("-inf")] * 3 + [0.5, 2.0, -1.0]), 2),
             note="a masked first tile (left padding): -inf scores before the real ones"),
    ],
    bad_cases=lambda: [Case((torch.tensor([1.0, 2.0]), 0), note="tile 0")],
))

register(Exercise(
    id="ch4.attention_flops", title="Predict: the FLOPs of attention", kind="number",
    section="04_attention.md",
    prompt=("One head, n = 1024 tokens, head dimension d = 64, no mask. How many FLOPs do the "
            "two matrix products QK^T and PV take (a multiply-add counts as 2)? Within 1%."),
    hint="Each product is n x n x d multiply-adds.",
    reference=4 * 1024 * 1024 * 64, tolerance=0.01,
))


def repeat_kv(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    """(B, h_kv, n, d) -> (B, h_kv * n_rep, n, d): each KV head serves n_rep query heads."""
    need_tensor("x", x, min_dim=4)
    need_int("n_rep", n_rep, low=1)
    return x.repeat_interleave(n_rep, dim=1)


register(Exercise(
    id="ch4.repeat_kv", title="GQA: share each key/value head", kind="function",
    section="04_attention.md",
    prompt=("Write repeat_kv(x, n_rep) for x of shape (batch, kv_heads, seq, head_dim): return "
            "(batch, kv_heads * n_rep, seq, head_dim) where query heads 0..n_rep-1 use KV head "
            "0, the next n_rep use KV head 1, and so on. Raise ValueError for n_rep < 1."),
    hint="Consecutive query heads share a KV head: repeat each head in place, do not tile.",
    reference=repeat_kv,
    cases=lambda: [
        Case((randn(1, 2, 3, 4, seed=9), 2)),
        Case((randn(2, 3, 2, 2, seed=10), 1), note="n_rep = 1 is MHA"),
        Case((randn(1, 1, 2, 2, seed=11), 4), note="one KV head is MQA"),
    ],
    bad_cases=lambda: [Case((randn(1, 2, 3, 4), 0), note="n_rep = 0")],
))

register(Exercise(
    id="ch4.gqa_saving", title="Predict: GQA's KV-cache saving", kind="number",
    section="04_attention.md",
    prompt=("A model with 32 query heads switches from multi-head attention to GQA with 8 KV "
            "heads. By what factor does its KV cache shrink?"),
    hint="The cache holds one key and one value per KV head.",
    reference=4.0, tolerance=0.0,
))

register(Exercise(
    id="ch4.speed", title="Explain: where FlashAttention's speed comes from", kind="choice",
    section="04_attention.md",
    prompt="On a GPU, FlashAttention is faster than standard attention mainly because it:",
    choices={
        "a": "does fewer floating-point operations",
        "b": "reads and writes far less GPU main memory, by fusing the steps and tiling",
        "c": "approximates the softmax",
        "d": "computes in lower precision",
    },
    explanations={
        "a": "It does the same matrix products, plus recomputation in the backward pass.",
        "b": "The n x n matrix never goes to main memory; attention is memory-bound.",
        "c": "It is exact: the online softmax gives the same result.",
        "d": "It runs in the same precision as the attention it replaces.",
    },
    hint="Compare the bytes moved, not the FLOPs.",
    reference="b",
))
