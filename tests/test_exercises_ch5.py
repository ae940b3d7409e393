"""Exercises of page 5: every one has plausible wrong answers that fail with a useful
message, and the solutions agree with the course's own code."""

import pytest
import torch
import torch.nn.functional as F  # noqa: F401

from course_lib.exercises import check, get, list_exercises, solution

PAGE = 5


def _lora_no_scale(x, weight, bias, lora_a, lora_b, alpha):
    return F.linear(x, weight, bias) + (x @ lora_a.T) @ lora_b.T


def _lora_alpha(x, weight, bias, lora_a, lora_b, alpha):
    return F.linear(x, weight, bias) + alpha * (x @ lora_a.T) @ lora_b.T


WRONG = {
    "ch5.lora_params": [512 * 64, 4 * 512 * 64],
    "ch5.lora_forward": [_lora_no_scale, _lora_alpha],
    "ch5.b_zero": ["a", "c"],
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
    from course_lib import peft

    base = torch.nn.Linear(8, 4)
    layer = peft.LoRALinear(base, r=2, alpha=16.0)
    with torch.no_grad():
        layer.lora_B.normal_()
    x = torch.randn(3, 8)
    ours = solution("ch5.lora_forward")(x, base.weight, base.bias, layer.lora_A, layer.lora_B,
                                        16.0)
    assert torch.allclose(ours, layer(x), atol=1e-6)
    assert solution("ch5.lora_params") == peft.lora_param_count(512, 64, 4)
