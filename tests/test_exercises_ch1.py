"""Exercises of page 1: every one has plausible wrong answers that fail with a useful
message, and the solutions agree with the course's own code."""

import math

import pytest
import torch

from course_lib import attention
from course_lib.exercises import check, get, list_exercises, solution
from course_lib.models import Block, GPTConfig

PAGE = 1


def _softmax_no_max(x):
    e = torch.exp(x)
    return e / e.sum(-1, keepdim=True)


def _softmax_dim0(x):
    m = x.amax(0, keepdim=True)
    e = torch.exp(x - m)
    return e / e.sum(0, keepdim=True)


def _causal_strict(n):
    return torch.ones(n, n, dtype=torch.bool).tril(-1)


def _causal_upper(n):
    return torch.ones(n, n, dtype=torch.bool).triu()


def _top_p_excl(probs, p):  # drops the token that crosses p (off by one)
    order = torch.argsort(probs, -1, descending=True)
    sp = torch.gather(probs, -1, order)
    keep_sorted = sp.cumsum(-1) < p
    keep_sorted[..., 0] = True
    keep = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)
    kept = torch.where(keep, probs, torch.zeros_like(probs))
    return kept / kept.sum(-1, keepdim=True)


def _top_p_no_renorm(probs, p):
    ref = solution("ch1.top_p")(probs, p)
    return torch.where(ref > 0, probs, torch.zeros_like(probs))


WRONG = {
    "ch1.softmax": [_softmax_no_max, _softmax_dim0],
    "ch1.causal_mask": [_causal_strict, _causal_upper],
    "ch1.top_p": [_top_p_excl, _top_p_no_renorm],
    "ch1.block_params": [4 * 128 * 128 + 2 * 128 * 512, 198_272 + 4 * 4 * 128],
    "ch1.nats": [math.log2(4), 0.25],
    "ch1.why_scale": ["a", "d"],
}


def test_every_exercise_of_the_page_has_wrong_answers():
    assert set(WRONG) == set(list_exercises(PAGE))


@pytest.mark.parametrize("exercise_id", list(WRONG))
def test_wrong_answers_fail_with_a_useful_message(exercise_id, capsys):
    ex = get(exercise_id)
    assert len(WRONG[exercise_id]) >= 2
    for wrong in WRONG[exercise_id]:
        assert check(exercise_id, wrong) is False, wrong
        out = capsys.readouterr().out
        assert out.startswith("✗") and "Traceback" not in out
        if ex.kind == "function":
            assert "Hint:" in out and "(" in out  # a hint, and the failing call to paste


def test_solutions_match_course_lib():
    x = torch.randn(4, 9)
    assert torch.allclose(solution("ch1.softmax")(x), attention.softmax(x), atol=1e-6)
    for n in (1, 3, 7):
        assert torch.equal(solution("ch1.causal_mask")(n), attention.causal_mask(n))
    cfg = GPTConfig(vocab_size=512, block_size=64, n_layer=1, n_head=4, d_model=128)
    block_params = sum(p.numel() for p in Block(cfg).parameters())
    assert solution("ch1.block_params") == block_params
