"""Exercises of page 3: every one has plausible wrong answers that fail with a useful
message, and the solutions agree with the course's own code."""

import math

import pytest
import torch

from course_lib import numerics, quant
from course_lib.exercises import check, get, list_exercises, solution

PAGE = 3


def _absmax_per_tensor(x, bits=8):
    qmax = 2 ** (bits - 1) - 1
    s = x.abs().max() / qmax
    return torch.round(x / s).clamp(-qmax, qmax).to(torch.int8), s.expand(x.shape[0], 1)


def _absmax_128(x, bits=8):
    qmax = 2 ** (bits - 1)
    s = x.abs().amax(1, keepdim=True) / qmax
    return torch.round(x / s).clamp(-qmax, qmax - 1).to(torch.int8), s


def _nf4_by_max(block):  # divides by max, not max |x|
    levels = torch.tensor(quant.NF4_LEVELS)
    norm = block / block.max()
    return (norm[:, None] - levels[None]).abs().argmin(1).to(torch.uint8)


def _nf4_no_scale(block):
    levels = torch.tensor(quant.NF4_LEVELS)
    return (block[:, None] - levels[None]).abs().argmin(1).to(torch.uint8)


WRONG = {
    "ch3.absmax": [_absmax_per_tensor, _absmax_128],
    "ch3.pi_e5m2": [3.25, 3.140625],
    "ch3.fp16_max": [65535.0, 65536.0],
    "ch3.nf4_codes": [_nf4_by_max, _nf4_no_scale],
    "ch3.bf16": ["a", "d"],
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
    w = torch.randn(5, 32)
    q, s = solution("ch3.absmax")(w)
    q_ref, s_ref = quant.absmax_quantize(w, bits=8, dim=1)
    assert torch.equal(q, q_ref.reshape(q.shape))
    assert torch.allclose(s.flatten(), s_ref.flatten())
    assert solution("ch3.pi_e5m2") == numerics.round_to(math.pi, "fp8_e5m2")
    assert solution("ch3.fp16_max") == torch.finfo(torch.float16).max
    block = torch.randn(64)
    codes_ref, _ = quant.nf4_quantize(block, 64)
    assert torch.equal(solution("ch3.nf4_codes")(block), codes_ref)
