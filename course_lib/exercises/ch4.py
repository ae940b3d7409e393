"""Chapter 4 exercises: merging two online-softmax states, the tiles a causal mask skips, where
FlashAttention's speed comes from, the FLOPs of a causal forward and backward pass, and the KV
cache of a GQA model. Registered in the order of book/04_attention.md."""

from __future__ import annotations

import math

import torch

from course_lib.exercises import Case, Exercise, register
from course_lib.exercises._util import need_int, need_tensor

PAGE = "04_attention.md"


def merge_states(m1: torch.Tensor, s1: torch.Tensor, m2: torch.Tensor,
                 s2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Merge two partial online-softmax states (m, s) of the same rows into one."""
    for name, t in (("m1", m1), ("s1", s1), ("m2", m2), ("s2", s2)):
        need_tensor(name, t)
    if not (m1.shape == s1.shape == m2.shape == s2.shape):
        raise ValueError(f"merge_states: m1, s1, m2, s2 must have one shape, got "
                         f"{[tuple(t.shape) for t in (m1, s1, m2, s2)]}")
    if bool((s1 < 0).any()) or bool((s2 < 0).any()):
        raise ValueError("merge_states: a running sum s1 or s2 is negative")
    m = torch.maximum(m1, m2)
    ref = m.masked_fill(m == -math.inf, 0.0)  # both halves saw only masked keys: keep (-inf, 0)
    s = s1 * torch.exp(m1 - ref) + s2 * torch.exp(m2 - ref)
    return m, s


def _state(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The (m, s) of each row of x, computed directly (for the cases)."""
    m = x.amax(-1)
    ref = m.masked_fill(m == -math.inf, 0.0)
    return m, torch.exp(x - ref[..., None]).sum(-1)


def _merge_case(seed: int, rows: int, n1: int, n2: int, scale: float = 1.0, note: str = ""):
    gen = torch.Generator().manual_seed(seed)
    x = (torch.randn(rows, n1 + n2, generator=gen) * scale).round(decimals=3)
    (m1, s1), (m2, s2) = _state(x[:, :n1]), _state(x[:, n1:])
    return Case((m1, s1, m2, s2), note=note)


register(Exercise(
    id="ch4.merge_states", title="Merge two partial softmax states", kind="function",
    section=PAGE, transfer=True,
    prompt=("Write merge_states(m1, s1, m2, s2) -> (m, s): two workers each ran the online "
            "softmax over half of the keys of the same rows; combine their running max and "
            "running sum into those of the whole row. ValueError when the shapes differ."),
    hint=("Both sums must be brought to the same reference point before they are added: "
          "the new max. A half that saw only masked keys has m = -inf and s = 0, and "
          "-inf - (-inf) is NaN."),
    why=(r"Each half holds $s_k = \sum_{j \in \text{half } k} e^{x_j - m_k}$. With "
         r"$m = \max(m_1, m_2)$, multiplying by $e^{m_k - m}$ moves each sum to the new "
         r"reference: $s_k e^{m_k - m} = \sum_{j \in \text{half } k} e^{x_j - m}$. Adding the "
         r"two gives $s = s_1 e^{m_1 - m} + s_2 e^{m_2 - m} = \sum_j e^{x_j - m}$, the state of "
         r"the whole row. This is the online softmax's update with a whole second state in "
         r"place of one tile, and it is how split-K (flash-decoding) kernels combine the work "
         r"of several thread blocks that each read part of a long KV cache. Where both halves "
         r"saw only $-\infty$, subtract 0 instead of $m$ so that the state stays "
         r"$(-\infty, 0)$ rather than NaN."),
    reference=merge_states, atol=1e-6, rtol=1e-5,
    cases=lambda: [
        Case((torch.tensor([2.0]), torch.tensor([1.5]), torch.tensor([2.0]),
              torch.tensor([0.5])), note="equal maxima: the sums simply add"),
        Case((torch.tensor([1.0]), torch.tensor([1.0]), torch.tensor([3.0]),
              torch.tensor([1.0])), note="the second half has the larger max"),
        Case((torch.tensor([3.0]), torch.tensor([2.0]), torch.tensor([1.0]),
              torch.tensor([1.0])), note="the first half has the larger max"),
        _merge_case(1, 4, 5, 3, note="four rows, halves of 5 and 3 keys"),
        _merge_case(2, 3, 6, 6, scale=30.0, note="large scores: exp(m) would overflow"),
        Case((torch.tensor([-math.inf, 0.5]), torch.tensor([0.0, 2.0]),
              torch.tensor([1.0, -math.inf]), torch.tensor([3.0, 0.0])),
             note="one half saw only masked keys (m = -inf, s = 0)"),
        Case((torch.tensor([-math.inf]), torch.tensor([0.0]), torch.tensor([-math.inf]),
              torch.tensor([0.0])), note="both halves masked: the state stays (-inf, 0)"),
    ],
    bad_cases=lambda: [
        Case((torch.zeros(2), torch.ones(2), torch.zeros(3), torch.ones(3)),
             note="halves with different numbers of rows"),
    ],
))


def causal_tiles(n: int, block_q: int, block_k: int) -> tuple[int, int]:
    """(tiles computed, tiles skipped) by a causal tiled forward over n queries and n keys."""
    need_int("n", n, low=1)
    need_int("block_q", block_q, low=1)
    need_int("block_k", block_k, low=1)
    t_r, t_c = -(-n // block_q), -(-n // block_k)
    computed = 0
    for i in range(t_r):
        last_query = min((i + 1) * block_q, n) - 1
        computed += last_query // block_k + 1  # key tiles whose first key it may see
    return computed, t_r * t_c - computed


register(Exercise(
    id="ch4.causal_tiles", title="The tiles a causal mask skips", kind="function",
    section=PAGE, transfer=True,
    prompt=("Write causal_tiles(n, block_q, block_k) -> (computed, skipped): how many score "
            "tiles a causal tiled forward over n queries and n keys computes, and how many it "
            "skips because every entry is masked. ValueError for n or a block size < 1."),
    hint=("A tile is needed when its first key is visible to its last query: key tile j "
          "starts at key j * block_k, and query tile i ends at query "
          "min((i + 1) * block_q, n) - 1. The last tiles may be partial."),
    why=(r"Under a causal mask query $q$ sees keys $0 \dots q$. Tile $(i, j)$ holds queries "
         r"$iB_r \dots \min((i+1)B_r, n) - 1$ and keys from $jB_c$ on; it has a visible entry "
         r"exactly when its first key is at most its last query, "
         r"$jB_c \le \min((i+1)B_r, n) - 1$. So query tile $i$ computes "
         r"$\lfloor (\min((i+1)B_r, n) - 1) / B_c \rfloor + 1$ key tiles, and the rest of the "
         r"$T_r T_c$ tiles ($T_r = \lceil n/B_r \rceil$, $T_c = \lceil n/B_c \rceil$) are "
         r"skipped. For $n = 1024$ and $64 \times 64$ tiles that is 136 of 256 computed and "
         r"120 skipped: close to half, plus the diagonal tiles, which are computed and "
         r"partly masked. This is why a causal kernel costs about half the FLOPs, and why "
         r"`flash.attention_flops(..., causal=True)` halves the count."),
    reference=causal_tiles,
    cases=lambda: [
        Case((8, 4, 4), note="two square tiles a side"),
        Case((1024, 64, 64), note="16 x 16 square tiles"),
        Case((10, 4, 4), note="n is no multiple of the tiles: partial last tiles"),
        Case((12, 4, 6), note="key tiles wider than query tiles"),
        Case((12, 6, 4), note="query tiles taller than key tiles"),
        Case((100, 128, 128), note="one tile holds everything"),
        Case((1000, 64, 96), note="the tiles of the chapter's exactness check"),
        Case((1, 1, 1), note="n = 1"),
    ],
    bad_cases=lambda: [Case((0, 4, 4), note="n = 0"), Case((8, 0, 4), note="block_q = 0")],
))

register(Exercise(
    id="ch4.speed", title="Explain: more FLOPs, yet faster", kind="choice", section=PAGE,
    prompt=("FlashAttention's backward pass does more FLOPs than standard attention's (it "
            "recomputes S); on a GPU it still runs faster, mainly because it:"),
    choices={
        "a": "does fewer floating-point operations in the forward pass",
        "b": "reads and writes far less HBM: the n x n matrices never leave SRAM, and "
             "attention is limited by memory traffic, not arithmetic",
        "c": "approximates the softmax with its running maximum",
        "d": "computes in a lower precision than standard attention",
    },
    explanations={
        "a": "The forward pass does the same two matrix products, 4n²d FLOPs.",
        "b": "Standard attention's time goes to moving S and P through HBM; extra FLOPs are "
             "cheap next to those bytes.",
        "c": "The online softmax is exact: the rescaling makes the running sum equal to the "
             "full denominator.",
        "d": "It runs in the precision of the attention it replaces (fp16/bf16 inputs, fp32 "
             "accumulation).",
    },
    hint="Compare the time the arithmetic takes with the time the bytes take, on an A100.",
    why=("Section 1 put numbers on it: on an A100 the two matrix products of one head at "
         "n = 4096, d = 64 take about 14 microseconds at peak speed ($4n^2d$ FLOPs at 312 "
         "TFLOP/s), while writing and re-reading S and P "
         "through HBM takes several times longer. An operation that waits on memory gets "
         "faster when it moves fewer bytes, even if it does more arithmetic: recomputing S in "
         "the backward pass costs one extra matrix product, far less than storing P in the "
         "forward pass and reading it back."),
    reference="b",
))

register(Exercise(
    id="ch4.train_flops", title="Predict: the FLOPs of a causal forward and backward",
    kind="number", section=PAGE, transfer=True,
    prompt=("One head, causal, n = 2048, d = 128, FlashAttention forward plus backward "
            "(which recomputes S): how many FLOPs do its matrix products take? Within 1%."),
    hint=("Count the n x n x d matrix products: two in the forward pass; in the backward, "
          "the recomputed S, dV, dP, dQ and dK. Then apply the causal mask."),
    why=(r"Every product in attention's forward and backward pairs an $n \times n$ matrix "
         r"with an $n \times d$ one (or two $n \times d$ matrices into an $n \times n$ one): "
         r"$n \cdot n \cdot d$ multiply-adds, $2n^2d$ FLOPs. The forward pass has two ($S = "
         r"QK^\top$, $O = PV$). The backward has five: the recomputed $S = QK^\top$, "
         r"$dV = P^\top dO$, $dP = dO\,V^\top$, $dQ = dS\,K$ and $dK = dS^\top Q$. Seven "
         r"products, $14n^2d$ FLOPs; the causal mask keeps about half the tiles, so "
         r"$7n^2d = 7 \cdot 2048^2 \cdot 128 \approx 3.76 \times 10^9$ FLOPs, 3.5 times the "
         r"causal forward alone (`flash.attention_flops(n, n, d, causal=True)` $= 2n^2d$)."),
    reference=7 * 2048 * 2048 * 128, tolerance=0.01,
))

register(Exercise(
    id="ch4.kv_cache_gqa", title="Predict: the KV cache of a GQA model", kind="number",
    section=PAGE, transfer=True,
    prompt=("A model with 48 layers, 40 query heads, 8 KV heads and head dimension 128 serves "
            "a batch of 4 sequences of 8192 tokens with a bf16 KV cache. How many GiB does "
            "the cache take? Within 1%."),
    hint=("The cache stores a key and a value per token, per layer and per KV head (not per "
          "query head); bf16 takes 2 bytes; 1 GiB is 2^30 bytes."),
    why=(r"Per token: $2$ (K and V) $\times 48$ layers $\times 8$ KV heads $\times 128$ "
         r"$\times 2$ bytes $= 196{,}608$ bytes. Times $4 \times 8192$ tokens: "
         r"$6{,}442{,}450{,}944$ bytes $= 6$ GiB exactly (`memory.kv_cache_bytes(4, 8192, 48, "
         r"8, 128, dtype='bf16')`). The 40 query heads do not enter; with MHA (40 KV heads) "
         r"the cache would be $40/8 = 5$ times larger, 30 GiB."),
    reference=6.0, tolerance=0.01,
))
