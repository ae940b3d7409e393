"""Chapter 1 exercises: a BPE merge step, a stable softmax, attention by hand, the size of a
modern block, a loss with ignored positions, and top-k sampling at a temperature."""

from __future__ import annotations

import math
from collections import Counter

import torch

from course_lib.exercises import Case, Exercise, register
from course_lib.exercises._util import need_int, need_real, need_tensor, randn


# ------------------------------------------------------------------------ 1. a BPE merge step
def bpe_merge_step(word_counts: dict) -> tuple:
    """One BPE training step on a table {word as a tuple of symbols: count}: the most frequent
    adjacent pair (ties: the smallest pair in Python's order), and the table with it merged."""
    if not isinstance(word_counts, dict):
        raise TypeError(f"bpe_merge_step: word_counts must be a dict, got "
                        f"{type(word_counts).__name__}")
    pairs = Counter()
    for word, n in word_counts.items():
        if not isinstance(word, tuple) or isinstance(n, bool) or not isinstance(n, int) \
                or n < 1:
            raise ValueError(f"bpe_merge_step: word_counts maps tuples of symbols to counts "
                             f">= 1, got {word!r}: {n!r}")
        for pair in zip(word, word[1:]):
            pairs[pair] += n
    if not pairs:
        raise ValueError("bpe_merge_step: no word in word_counts has two symbols to merge")
    best = max(pairs.values())
    a, b = min(p for p, c in pairs.items() if c == best)
    merged = {}
    for word, n in word_counts.items():
        out, i = [], 0
        while i < len(word):
            if word[i:i + 2] == (a, b):
                out.append(a + b)
                i += 2
            else:
                out.append(word[i])
                i += 1
        merged[tuple(out)] = merged.get(tuple(out), 0) + n
    return (a, b), merged


def _words(*items):
    """{word split into characters: count} from ("word", count) pairs."""
    return {tuple(w): n for w, n in items}


register(Exercise(
    id="ch1.bpe_merge_step", title="One BPE merge step", kind="function",
    section="01_transformer.md",
    prompt=("Write bpe_merge_step(word_counts) -> (pair, new_word_counts): the most frequent "
            "adjacent pair of symbols, counted with each word's frequency (ties: the smallest "
            "pair), and the table with every occurrence of it merged left to right."),
    hint=("Count every adjacent pair of every word, adding the word's count, not 1. Merge "
          "scanning left to right and skip past a merged pair, so ('a', 'a', 'a') with pair "
          "('a', 'a') becomes ('aa', 'a')."),
    why=("Two loops, exactly the two halves of section 1's `train_bpe`. Counting: each word "
         "contributes its count to every adjacent pair in it, so a pair inside a frequent word "
         "wins even if it appears in few distinct words. Merging: a left-to-right scan that "
         "jumps over the two symbols it just merged; `('a', 'a', 'a')` becomes "
         "`('aa', 'a')`, never `('a', 'aa')` and never a double count. Two words can merge "
         "into the same tuple, so the new table adds their counts. Strings are the symbols "
         "here where the page used byte ids: `'l' + 'o'` is the new symbol `'lo'`, the way "
         "`vocab[a] + vocab[b]` built the new token's bytes. Repeating the step reproduces "
         "`BPETokenizer.train` merge for merge (the tests check it on a small corpus)."),
    transfer=False,
    reference=bpe_merge_step,
    cases=lambda: [
        Case((_words(("low", 5), ("lower", 2), ("newest", 6), ("widest", 3)),),
             note="a classic table: 'es' and 'st' both occur 9 times"),
        Case((_words(("aaa", 1)),), note="a pair that overlaps itself"),
        Case((_words(("ab", 1), ("ba", 1)),), note="a tie: the smallest pair wins"),
        Case((_words(("hug", 10), ("pug", 5), ("pun", 12), ("bun", 4), ("hugs", 5)),),
             note="counts weigh the pairs"),
        Case(({("lo", "w"): 3, ("l", "o", "w"): 2},),
             note="two words that merge into the same one: their counts add"),
        Case((_words(("x", 4), ("yz", 1)),), note="a one-symbol word stays as it is"),
    ],
    bad_cases=lambda: [Case(({},), note="an empty table"),
                       Case((_words(("a", 3)),), note="nothing left to merge"),
                       Case(([("a", "b")],), note="a list, not a dict")],
))


# ------------------------------------------------------------------- 2. a softmax that is safe
def softmax(x: torch.Tensor) -> torch.Tensor:
    """Softmax over the last dimension, safe for large scores: subtract the row maximum."""
    need_tensor("x", x)
    m = x.amax(dim=-1, keepdim=True)
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))   # a row of -inf stays NaN-free
    e = torch.exp(x - m)
    return e / e.sum(dim=-1, keepdim=True)


register(Exercise(
    id="ch1.softmax", title="A softmax that does not overflow", kind="function",
    section="01_transformer.md",
    prompt=("Write softmax(x) over the last dimension of a float tensor. exp(1000) overflows "
            "to inf, so subtract each row's maximum first (the result does not change: the "
            "factor e^-max cancels). Raise ValueError for an empty tensor or one with NaN."),
    hint="Find each row's maximum with keepdim=True so it broadcasts, and subtract it first.",
    why=("$e^{x_j - m} / \\sum_l e^{x_l - m} = e^{x_j} / \\sum_l e^{x_l}$ for any $m$: the "
         "factor $e^{-m}$ cancels. With $m = \\max_j x_j$ every exponent is $\\le 0$, so "
         "nothing overflows, and the largest term is exactly $e^0 = 1$, so the sum never "
         "underflows to 0. `keepdim=True` keeps the maximum a column that broadcasts against "
         "its row. A masked score of $-\\infty$ becomes $e^{-\\infty} = 0$, as a mask "
         "should; only a row that is all $-\\infty$ needs care (its maximum is replaced by 0)."),
    transfer=False,
    reference=softmax,
    cases=lambda: [
        Case((torch.tensor([1.0, 2.0, 3.0]),), note="three scores"),
        Case((torch.tensor([0.42, 2.32, 0.96]),), note="the notes' compatibility scores"),
        Case((torch.tensor([1000.0, 1000.0, 999.0]),), note="large scores: exp overflows"),
        Case((torch.tensor([float("-inf"), 0.0, 1.0]),), note="a masked score (-inf)"),
        Case((randn(3, 5, seed=1),), note="a batch of rows: softmax along the last dim"),
        Case((torch.full((2, 4), 7.0),), note="all scores equal"),
    ],
    bad_cases=lambda: [Case((torch.tensor([]),), note="empty"),
                       Case((torch.tensor([1.0, float("nan")]),), note="NaN")],
))


# ------------------------------------------------------------------- 3. attention by hand
ATTN_Q = (2.0, 0.0, 1.0, 1.0)
ATTN_K = ((1.0, 0.0, 0.0, 0.0), (0.0, 0.0, 1.0, 1.0), (1.0, 1.0, 1.0, 1.0))
ATTN_V = ((1.0, 0.0), (0.0, 1.0), (2.0, 2.0))


def _attention_by_hand() -> float:
    d_k = len(ATTN_Q)
    scores = [sum(q * k for q, k in zip(ATTN_Q, key)) / math.sqrt(d_k) for key in ATTN_K]
    e = [math.exp(s) for s in scores]
    weights = [x / sum(e) for x in e]
    return sum(w * v[0] for w, v in zip(weights, ATTN_V))


register(Exercise(
    id="ch1.attention_by_hand", title="Attention weights of three tokens, by hand",
    kind="number", section="01_transformer.md",
    prompt=("Token 3 of a 3-token text has query (2, 0, 1, 1); the keys are (1, 0, 0, 0), "
            "(0, 0, 1, 1), (1, 1, 1, 1), the values (1, 0), (0, 1), (2, 2). What is the first "
            "number of token 3's attention output (scaled by sqrt(d_k))? Within 0.1%."),
    hint=("Three dot products, divide each by sqrt(4) = 2, softmax the three, then the first "
          "entries of the values weighted by them."),
    why=("Scores: $q \\cdot k_1 = 2$, $q \\cdot k_2 = 2$, $q \\cdot k_3 = 4$; divided by "
         "$\\sqrt{d_k} = 2$: $(1, 1, 2)$. Softmax: $e^1, e^1, e^2$ over their sum "
         "$2e + e^2$, so the weights are $(0.212, 0.212, 0.576)$: the third token, whose key "
         "matches the query best, gets the most. The output is "
         "$0.212\\,(1, 0) + 0.212\\,(0, 1) + 0.576\\,(2, 2) = (1.364, 1.364)$; its first "
         "number is **1.364**. Without the scale the weights would be "
         "$(0.107, 0.107, 0.787)$ and the output 1.68: the scale softens the choice. The "
         "causal mask changes nothing here, because token 3 is the last and may see all "
         "three."),
    transfer=True,
    reference=_attention_by_hand(), tolerance=1e-3,
))


# ------------------------------------------------- 4. the parameters of a modern block
def _modern_block_params(d_model: int = 256, n_heads: int = 8, n_kv_heads: int = 2,
                         d_ff: int = 688) -> int:
    head_dim = d_model // n_heads
    attention = 2 * d_model * d_model + 2 * d_model * n_kv_heads * head_dim   # q, o; k, v
    mlp = 3 * d_model * d_ff                                                  # gate, up, down
    norms = 2 * d_model                                                       # RMSNorm weights
    return attention + mlp + norms


register(Exercise(
    id="ch1.modern_block_params", title="Count a modern block's parameters",
    kind="number", section="01_transformer.md",
    prompt=("A Llama-style block: d_model = 256, 8 query heads of 32 numbers, 2 key/value "
            "heads (GQA), a gated MLP with d_ff = 688 (three matrices), two RMSNorms with a "
            "weight only, no biases anywhere. How many parameters? Exact."),
    hint=("The key and value projections only produce 2 heads of 32 numbers each: "
          "d_model x 64, not d_model x d_model. A gated MLP has two d_model x d_ff matrices "
          "and one d_ff x d_model. Count an RMSNorm as d_model numbers."),
    why=("Attention: $W_Q$ and $W_O$ are $256 \\times 256$ each, 131,072 together; $W_K$ and "
         "$W_V$ map 256 numbers to 2 heads $\\times$ 32 = 64, so $2 \\cdot 256 \\cdot 64 = "
         "32{,}768$: sharing key/value heads cuts them by the factor 8/2 = 4. MLP: "
         "$3 \\cdot 256 \\cdot 688 = 528{,}384$. Norms: $2 \\cdot 256 = 512$. Total "
         "**692,736**. Compare tiny-gpt's formula $12d^2 + 13d$ = 789,760 at the same "
         "$d = 256$: the gated MLP's $d_\\text{ff} \\approx \\tfrac{8}{3} d$ keeps its three "
         "matrices near the cost of the plain MLP's two at $4d$, and GQA takes off most of "
         "the $K$ and $V$ weights (and, [chapter 4](04_attention.md) shows, of the KV cache)."),
    transfer=True,
    reference=_modern_block_params(), tolerance=0.0,
))


# ---------------------------------------------------------- 5. a loss with ignored targets
LOSS_P_TRUE = ((1 / 2, 1 / 4, 1 / 4, 1 / 8), (1 / 2, 1 / 2, None, None))


def _masked_loss() -> float:
    kept = [p for row in LOSS_P_TRUE for p in row if p is not None]
    return sum(-math.log(p) for p in kept) / len(kept)


register(Exercise(
    id="ch1.masked_nats", title="The loss of a padded batch", kind="number",
    section="01_transformer.md",
    prompt=("A batch of two sequences of 4 targets. The model gives the true next token "
            "probabilities 1/2, 1/4, 1/4, 1/8 in the first, 1/2, 1/2 in the second, whose last "
            "two targets are -100 (padding). The cross-entropy in nats, as "
            "F.cross_entropy(..., ignore_index=-100) computes it? Within 1%."),
    hint=("-100 positions are left out of both the sum and the count: average -ln p over the "
          "positions that have a target."),
    why=("Six positions have a target; $-\\ln$ of their probabilities is $\\ln 2$, "
         "$2\\ln 2$, $2\\ln 2$, $3\\ln 2$, $\\ln 2$, $\\ln 2$, ten $\\ln 2$ in all. "
         "`ignore_index` drops the two padded positions from the sum **and** from the count: "
         "$10 \\ln 2 / 6 \\approx$ **1.155** nats (perplexity $e^{1.155} \\approx 3.2$). "
         "Dividing by all 8 positions (0.866) would reward padding; averaging each sequence "
         "first and then the two means (1.040) gives a short sequence's tokens more weight "
         "than a long one's; $\\log_2$ instead of $\\ln$ (1.667) measures bits, not nats."),
    transfer=True,
    reference=_masked_loss(), tolerance=0.01,
))


# ------------------------------------------------------- 6. top-k sampling at a temperature
def sampling_probs(logits: torch.Tensor, temperature: float, k: int) -> torch.Tensor:
    """The distribution top-k sampling draws from: logits / T, all but the k largest set to
    -inf (ties with the k-th are kept), softmax over the last dimension."""
    need_tensor("logits", logits)
    need_real("temperature", temperature, 0.0, math.inf, high_open=True)
    need_int("k", k, low=1)
    if k > logits.shape[-1]:
        raise ValueError(f"sampling_probs: k={k} is larger than the vocabulary "
                         f"({logits.shape[-1]} tokens)")
    z = logits / temperature
    kth = torch.topk(z, k, dim=-1).values[..., -1:]
    z = z.masked_fill(z < kth, float("-inf"))
    return torch.softmax(z, dim=-1)


register(Exercise(
    id="ch1.sampling_probs", title="Top-k sampling at a temperature", kind="function",
    section="01_transformer.md",
    prompt=("Write sampling_probs(logits, temperature, k): divide the logits by the "
            "temperature, keep the k largest (tokens tied with the k-th are kept too), and "
            "return the softmax, 0 for every dropped token. Raise ValueError for temperature "
            "<= 0, k < 1 or k larger than the vocabulary."),
    hint=("Order matters: divide by the temperature, then cut, then softmax, so the kept "
          "tokens' probabilities sum to 1. A dropped token's logit becomes -inf, whose "
          "exponential is 0."),
    why=("Dividing by $T$ first and applying the softmax last means the kept tokens are "
         "renormalised to sum to 1, which is what sampling needs. Setting the dropped logits "
         "to $-\\infty$ is the same trick as the causal mask: $e^{-\\infty} = 0$. Comparing "
         "with the $k$-th largest value (rather than taking `topk`'s indices) keeps every "
         "token tied with it, which is what `course_lib.models.sample_next` does. The "
         "temperature does not change *which* tokens are kept (dividing by $T > 0$ keeps the "
         "order), only how the probability is shared among them: $T < 1$ sharpens towards "
         "the best, $T > 1$ flattens."),
    transfer=False,
    reference=sampling_probs,
    cases=lambda: [
        Case((torch.tensor([2.0, 1.0, 0.0, -1.0]), 1.0, 2), note="keep the two largest"),
        Case((torch.tensor([0.0, 3.0, 1.0]), 0.5, 2), note="unsorted logits, T = 0.5"),
        Case((torch.tensor([0.0, 3.0, 1.0]), 2.0, 3), note="k = vocabulary: only the "
             "temperature acts"),
        Case((torch.tensor([1.0, 2.0, 2.0, 0.0]), 1.0, 2), note="a tie for the largest"),
        Case((torch.tensor([1.0, 2.0, 1.0, 0.0]), 1.0, 2), note="a tie with the k-th: kept"),
        Case((torch.tensor([500.0, 499.0, 0.0]), 1.0, 2), note="large logits"),
        Case((randn(2, 6, seed=4, scale=2.0), 0.7, 3), note="a batch of two rows"),
    ],
    bad_cases=lambda: [Case((torch.tensor([1.0, 2.0]), 0.0, 1), note="temperature 0"),
                       Case((torch.tensor([1.0, 2.0]), 1.0, 0), note="k = 0"),
                       Case((torch.tensor([1.0, 2.0]), 1.0, 3), note="k > vocabulary"),
                       Case((torch.tensor([1.0, 2.0]), 1.0, 1.5), note="fractional k")],
))
