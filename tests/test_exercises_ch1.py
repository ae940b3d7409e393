"""Exercises of page 1: every one has plausible wrong answers that fail with a useful
message, and the solutions agree with the course's own code."""

import math
from collections import Counter

import torch
import torch.nn as nn
import torch.nn.functional as F

from course_lib import attention, data
from course_lib.exercises import get, list_exercises, solution
from course_lib.models import sample_next
from course_lib.tokenizer import _PIECE, BPETokenizer

PAGE = 1


def _bpe_unweighted(word_counts):  # counts each pair once per distinct word, not per use
    (a, b), _ = solution("ch1.bpe_merge_step")({w: 1 for w in word_counts})
    merged = solution("ch1.bpe_merge_step")({w: 1 for w in word_counts})[1]
    out = {}
    for w, n in zip(merged, word_counts.values()):
        out[w] = out.get(w, 0) + n
    return (a, b), out


def _bpe_overlapping(word_counts):  # merges ('a','a','a') into ('aa','aa'): no skip
    (a, b), _ = solution("ch1.bpe_merge_step")(word_counts)
    out = {}
    for w, n in word_counts.items():
        new = []
        for i in range(len(w)):
            if w[i:i + 2] == (a, b):
                new.append(a + b)
            elif not (i > 0 and w[i - 1:i + 1] == (a, b)):
                new.append(w[i])
        out[tuple(new)] = out.get(tuple(new), 0) + n
    return (a, b), out


def _softmax_no_max(x):
    e = torch.exp(x)
    return e / e.sum(-1, keepdim=True)


def _softmax_dim0(x):
    m = x.amax(0, keepdim=True)
    e = torch.exp(x - m)
    return e / e.sum(0, keepdim=True)


def _sampling_cut_after_softmax(logits, temperature, k):  # forgets to renormalise
    p = torch.softmax(logits / temperature, -1)
    kth = torch.topk(p, k, -1).values[..., -1:]
    return torch.where(p < kth, torch.zeros_like(p), p)


def _sampling_topk_indices(logits, temperature, k):  # drops ties with the k-th
    z = logits / temperature
    idx = torch.topk(z, k, -1).indices
    keep = torch.zeros_like(z, dtype=torch.bool).scatter(-1, idx, True)
    return torch.softmax(z.masked_fill(~keep, float("-inf")), -1)


def _sampling_times_t(logits, temperature, k):  # multiplies by T
    return solution("ch1.sampling_probs")(logits * temperature * temperature, temperature, k)


LN2 = math.log(2)
WRONG = {
    "ch1.bpe_merge_step": [_bpe_unweighted, _bpe_overlapping],
    "ch1.softmax": [_softmax_no_max, _softmax_dim0],
    "ch1.attention_by_hand": [1.681, 1.0, 0.576],        # unscaled; mean of values; a weight
    "ch1.modern_block_params": [12 * 256 * 256 + 13 * 256,          # tiny-gpt's formula
                                4 * 256 * 256 + 3 * 256 * 688 + 512,  # GQA ignored
                                2 * 256 * 256 + 2 * 256 * 64 + 2 * 256 * 688 + 512],  # 2 mats
    "ch1.masked_nats": [10 * LN2 / 8, (2 * LN2 + LN2) / 2, 10 / 6],
    "ch1.sampling_probs": [_sampling_cut_after_softmax, _sampling_topk_indices,
                           _sampling_times_t],
}


def test_at_least_half_are_transfer_problems_and_every_one_says_why():
    exs = [get(i) for i in list_exercises(PAGE)]
    assert 4 <= len(exs) <= 6
    assert 2 * sum(ex.transfer for ex in exs) >= len(exs)
    assert all(ex.why for ex in exs)


def _merge_everywhere(table, pair):
    out = {}
    for w, n in table.items():
        new, i = [], 0
        while i < len(w):
            if w[i:i + 2] == pair:
                new.append(pair[0] + pair[1])
                i += 2
            else:
                new.append(w[i])
                i += 1
        out[tuple(new)] = out.get(tuple(new), 0) + n
    return out


def test_bpe_merge_steps_learn_the_tokenizers_merges():
    # characters as symbols, pieces (words with their leading space) as BPETokenizer cuts them
    text = data.corpus_text("val")[:2000]
    pieces = Counter(_PIECE.findall(text))
    table = {tuple(w): n for w, n in pieces.items()}
    n_merges = 30
    tok = BPETokenizer.train(text, vocab_size=256 + n_merges)
    vocab = {i: bytes([i]) for i in range(256)}
    for new_id, (a, b) in enumerate(tok.merges, start=256):
        vocab[new_id] = vocab[a] + vocab[b]
    step, unique = solution("ch1.bpe_merge_step"), 0
    for new_id, (a, b) in enumerate(tok.merges, start=256):
        library_pair = (vocab[a].decode(), vocab[b].decode())
        pairs = Counter()
        for w, n in table.items():
            for p in zip(w, w[1:]):
                pairs[p] += n
        pair, merged = step(table)
        assert merged == _merge_everywhere(table, pair)
        # both pick a most frequent pair; ties are broken by string order here, by id there
        assert pairs[pair] == pairs[library_pair] == max(pairs.values()), new_id
        if sum(c == pairs[pair] for c in pairs.values()) == 1:
            assert pair == library_pair
            unique += 1
        table = _merge_everywhere(table, library_pair)   # follow the library's choice
    assert unique >= 10 and sum(table.values()) == sum(pieces.values())


def test_softmax_matches_course_lib():
    x = torch.randn(4, 9)
    assert torch.allclose(solution("ch1.softmax")(x), attention.softmax(x), atol=1e-6)


def test_attention_by_hand_matches_course_lib():
    from course_lib.exercises.ch1 import ATTN_K, ATTN_Q, ATTN_V
    q, k, v = torch.tensor([ATTN_Q]), torch.tensor(ATTN_K), torch.tensor(ATTN_V)
    out, _ = attention.scaled_dot_product_attention(q, k, v, mask=attention.causal_mask(3)[2:])
    assert math.isclose(solution("ch1.attention_by_hand").reference, out[0, 0].item(), rel_tol=1e-6)


def test_modern_block_params_match_real_modules():
    d, d_ff = 256, 688
    attn = attention.MultiHeadAttention(d, n_heads=8, n_kv_heads=2, bias=False)
    mlp = nn.ModuleList([nn.Linear(d, d_ff, bias=False), nn.Linear(d, d_ff, bias=False),
                         nn.Linear(d_ff, d, bias=False)])
    norms = nn.ModuleList([nn.RMSNorm(d), nn.RMSNorm(d)])
    count = sum(p.numel() for m in (attn, mlp, norms) for p in m.parameters())
    assert solution("ch1.modern_block_params") == count


def test_masked_nats_matches_cross_entropy_with_ignore_index():
    from course_lib.exercises.ch1 import LOSS_P_TRUE
    logits, targets = [], []
    for row in LOSS_P_TRUE:
        for p in row:   # two-token vocabulary: token 0 is the true one, with probability p
            q = 0.5 if p is None else p
            logits.append([math.log(q), math.log(1 - q) if q < 1 else -50.0])
            targets.append(-100 if p is None else 0)
    loss = F.cross_entropy(torch.tensor(logits, dtype=torch.float64), torch.tensor(targets),
                           ignore_index=-100)
    assert math.isclose(solution("ch1.masked_nats").reference, loss.item(), rel_tol=1e-9)


def test_sampling_probs_is_what_sample_next_draws_from():
    logits = torch.tensor([2.0, 1.0, 1.0, 0.5, -1.0])
    probs = solution("ch1.sampling_probs")(logits, 0.8, 2)
    gen = torch.Generator().manual_seed(0)
    n = 20_000
    draws = sample_next(logits.repeat(n, 1), temperature=0.8, top_k=2, generator=gen)[:, 0]
    freq = torch.bincount(draws, minlength=5).double() / n
    assert torch.equal(freq > 0, probs > 0)               # the same tokens kept (a tie too)
    assert (freq - probs.double()).abs().max() < 0.02      # frequencies near the probabilities
