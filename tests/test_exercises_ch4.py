"""Exercises of page 4: every one has plausible wrong answers that fail with a useful
message, and the solutions agree with the course's own code."""

import math

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from course_lib import flash, memory
from course_lib.attention import causal_mask
from course_lib.exercises import get, list_exercises, solution

PAGE = 4


def _merge_no_rescale(m1, s1, m2, s2):
    return torch.maximum(m1, m2), s1 + s2           # sums taken at different references


def _merge_wrong_sign(m1, s1, m2, s2):
    m = torch.maximum(m1, m2)
    return m, s1 * torch.exp(m - m1) + s2 * torch.exp(m - m2)   # grows instead of shrinking


def _merge_no_guard(m1, s1, m2, s2):
    m = torch.maximum(m1, m2)                       # right, except -inf - (-inf) = NaN
    return m, s1 * torch.exp(m1 - m) + s2 * torch.exp(m2 - m)


def _tiles_square_formula(n, block_q, block_k):
    t = -(-n // block_q)                            # assumes square tiles
    return t * (t + 1) // 2, t * t - t * (t + 1) // 2


def _tiles_first_query(n, block_q, block_k):
    t_r, t_c = -(-n // block_q), -(-n // block_k)   # tests the tile's first query, not its last
    computed = sum((i * block_q) // block_k + 1 for i in range(t_r))
    return computed, t_r * t_c - computed


WRONG = {
    "ch4.merge_states": [_merge_no_rescale, _merge_wrong_sign, _merge_no_guard],
    "ch4.causal_tiles": [_tiles_square_formula, _tiles_first_query],
    "ch4.speed": ["a", "c"],
    "ch4.train_flops": [6 * 2048 * 2048 * 128,      # 3 x forward, halved: no recompute
                        14 * 2048 * 2048 * 128,     # the causal mask forgotten
                        2 * 2048 * 2048 * 128],     # the causal forward only
    "ch4.kv_cache_gqa": [30.0, 3.0, 6.0 * 2**30 / 1e9],   # MHA heads, K or V only, GB
}


def test_at_least_half_are_transfer_problems_with_reasoning():
    exs = [get(i) for i in list_exercises(PAGE)]
    assert 4 <= len(exs) <= 6 and 2 * sum(ex.transfer for ex in exs) >= len(exs)
    assert all(ex.why for ex in exs)


def test_merge_states_agrees_with_the_library_online_softmax():
    merge = solution("ch4.merge_states")
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(5, 23, generator=gen) * 4
    for split in (1, 8, 22):
        _, whole = flash.online_softmax(x, tile_size=4)
        _, left = flash.online_softmax(x[:, :split], tile_size=4)
        _, right = flash.online_softmax(x[:, split:], tile_size=4)
        m, s = merge(*left[-1], *right[-1])
        assert torch.equal(m, whole[-1][0])                     # a max: exact
        assert torch.allclose(s, whole[-1][1], rtol=1e-5)      # a sum in another order
    masked = torch.tensor([[-math.inf, -math.inf, 1.0, 2.0]])  # left padding
    _, left = flash.online_softmax(masked[:, :2], tile_size=2)
    _, right = flash.online_softmax(masked[:, 2:], tile_size=2)
    _, whole = flash.online_softmax(masked, tile_size=2)
    m, s = merge(*left[-1], *right[-1])
    assert torch.equal(m, whole[-1][0]) and torch.allclose(s, whole[-1][1])


@pytest.mark.parametrize("n, bq, bk", [(8, 4, 4), (10, 4, 4), (12, 4, 6), (12, 6, 4),
                                       (100, 128, 128), (300, 64, 48), (1000, 64, 96)])
def test_causal_tiles_agrees_with_the_mask_and_the_kernels_loop(n, bq, bk):
    computed, skipped = solution("ch4.causal_tiles")(n, bq, bk)
    mask = causal_mask(n)
    visible = sum(bool(mask[i:i + bq, j:j + bk].any())
                  for i in range(0, n, bq) for j in range(0, n, bk))
    assert computed == visible                                   # exact: integer counts
    assert computed + skipped == -(-n // bq) * -(-n // bk)
    # flash._forward's loop: key tiles up to the last query of each query tile
    assert computed == sum(-(-min(n, i + bq) // bk) for i in range(0, n, bq))


def test_train_flops_agrees_with_a_flop_counter_on_the_kernel():
    n, d = 128, 16
    q, k, v = (torch.randn(1, 1, n, d, requires_grad=True) for _ in range(3))
    with FlopCounterMode(display=False) as counter:
        flash.flash_attention(q, k, v, block_q=32, block_k=32).sum().backward()
    assert counter.get_total_flops() == 14 * n * n * d          # 7 products, exact count
    answer = solution("ch4.train_flops").reference
    assert answer == 7 * 2048**2 * 128 == 3.5 * flash.attention_flops(2048, 2048, 128, True)


def test_kv_cache_answer_is_the_course_formula():
    assert solution("ch4.kv_cache_gqa") == memory.kv_cache_bytes(4, 8192, 48, 8, 128,
                                                                 dtype="bf16") / 2**30
