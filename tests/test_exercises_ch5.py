"""Exercises of page 5: every one has plausible wrong answers that fail with a useful
message, and the solutions agree with the course's own code."""

import math

import pytest
import torch

from course_lib.exercises import get, list_exercises, solution

PAGE = 5


def _merge_no_scale(W, A, B, alpha):
    return W + B @ A


def _merge_alpha(W, A, B, alpha):
    return W + alpha * (B @ A)


def _merge_delta_only(W, A, B, alpha):
    return (alpha / A.shape[0]) * (B @ A)


def _wald(k, n):
    p, z = k / n, 1.959964
    half = z * math.sqrt(p * (1 - p) / n)
    return max(0.0, p - half), min(1.0, p + half)


def _wilson_90(k, n):
    z = 1.644854
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


# Exercise 1's shape: d_model 2048, 16 layers, 8 key/value heads of 64, r = 16 on q and v.
_Q, _V_AS_SQUARE = 16 * (2048 + 2048), 16 * (2048 + 2048)

WRONG = {
    "ch5.adapter_bytes": [16 * (16 * (2048 + 2048) + 16 * (2048 + 512)),       # parameters
                          2 * 16 * (_Q + _V_AS_SQUARE),                       # v as 2048 x 2048
                          4 * 16 * (16 * (2048 + 2048) + 16 * (2048 + 512))],  # fp32
    "ch5.merge": [_merge_no_scale, _merge_alpha, _merge_delta_only],
    "ch5.wilson": [_wald, _wilson_90],
    "ch5.mcnemar_p": [67 / 2048,                                   # one-sided
                      math.erfc(math.sqrt((9 - 2) ** 2 / 11 / 2)),  # chi-square, uncorrected
                      2 * sum(math.comb(100, i) for i in range(64)) / 2 ** 100],  # 70 vs 63
    "ch5.forgetting_base": ["a", "c", "d"],
}


def test_at_least_three_are_transfer_problems():
    assert sum(get(i).transfer for i in list_exercises(PAGE)) >= 3


def test_adapter_bytes_matches_the_course_counts():
    from course_lib import memory, peft

    c = memory.LLAMA_CONFIGS["llama-3.2-1b"]
    kv = c.n_kv_head * c.head_dim
    assert (c.d_model, c.n_layer, c.n_kv_head, c.head_dim) == (2048, 16, 8, 64)
    q_and_v = c.n_layer * (peft.lora_param_count(c.d_model, c.d_model, 16)
                           + peft.lora_param_count(c.d_model, kv, 16))
    assert solution("ch5.adapter_bytes") == 2 * q_and_v
    # the same shapes, all seven linears of a block, give the memory calculator's count
    every = c.n_layer * sum(peft.lora_param_count(i, o, 16) for i, o in [
        (c.d_model, c.d_model), (c.d_model, kv), (c.d_model, kv), (c.d_model, c.d_model),
        (c.d_model, c.d_ff), (c.d_model, c.d_ff), (c.d_ff, c.d_model)])
    assert every == memory.lora_param_count(c, r=16)
    # the worked answer's "about 0.14 % of a 1.2 billion parameter model"
    n = memory.llama_param_count(c)
    assert round(n / 1e9, 1) == 1.2 and round(100 * q_and_v / n, 2) == 0.14


def test_merge_equals_the_adapter_and_course_lib():
    from course_lib import peft

    layer = peft.LoRALinear(torch.nn.Linear(8, 5), r=2, alpha=6.0)
    with torch.no_grad():
        layer.lora_B.normal_()
    W, b = layer.base.weight, layer.base.bias
    merged = solution("ch5.merge")(W, layer.lora_A, layer.lora_B, 6.0)
    torch.testing.assert_close(merged, W + layer.delta_weight())
    x = torch.randn(4, 8)
    torch.testing.assert_close(x @ merged.T + b, layer(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("k,n", [(0, 10), (10, 10), (7, 10), (150, 300), (1, 1), (287, 300),
                                 (3, 1000)])
def test_wilson_matches_the_course_interval(k, n):
    from course_lib.evaluate import wilson_interval

    low, high = solution("ch5.wilson")(k, n)
    ref = wilson_interval(k, n)
    assert low == pytest.approx(ref[0], abs=1e-12) and high == pytest.approx(ref[1], abs=1e-12)


def test_wilson_worked_answer_numbers():
    low, high = solution("ch5.wilson")(0, 10)
    assert low == 0.0 and round(high, 2) == 0.28
    low, high = solution("ch5.wilson")(150, 300)
    assert round(100 * (high - low) / 2, 1) == 5.6


def test_mcnemar_p_matches_evaluate():
    from course_lib.evaluate import mcnemar

    a = [1] * 61 + [1] * 9 + [0] * 2 + [0] * 28
    b = [1] * 61 + [0] * 9 + [1] * 2 + [0] * 28
    p = solution("ch5.mcnemar_p").reference
    assert p == pytest.approx(mcnemar(a, b), rel=1e-12)
    assert p == 134 / 2048
    assert 0.05 < p < 0.07                                  # "not below the usual 0.05"


def test_forgetting_choice_quantizing_alone_raises_story_perplexity():
    """The worked answer's premise: the 4-bit base, before any training, already has a
    higher story perplexity than the fp32 model, so measuring from fp32 charges it to
    fine-tuning."""
    from course_lib import data, evaluate, quant
    from course_lib.models import load_pretrained

    base = load_pretrained("tiny-gpt")
    q = quant.quantize_model(load_pretrained("tiny-gpt"), "nf4", double_quant=True,
                             skip=("lm_head",))
    ids = torch.tensor(base.tokenizer.encode(data.corpus_text("val")[:6000]))
    ppl = {name: evaluate.perplexity(m, ids, block_size=96, max_windows=8)
           for name, m in (("fp32", base), ("nf4", q))}
    assert ppl["nf4"] > ppl["fp32"]
    assert solution("ch5.forgetting_base") == "b"
