"""Exercises of page 4: every one has plausible wrong answers that fail with a useful
message, and the solutions agree with the course's own code."""


import pytest
import torch

from course_lib import attention, flash
from course_lib.exercises import check, get, list_exercises, solution

PAGE = 4


def _online_no_rescale(x, tile):
    m, s = torch.tensor(float("-inf")), torch.tensor(0.0)
    for i in range(0, x.numel(), tile):
        c = x[i:i + tile]
        m = torch.maximum(m, c.max())
        s = s + torch.exp(c - m).sum()
    return torch.exp(x - m) / s


def _online_first_max(x, tile):
    m = x[:tile].max()
    return torch.exp(x - m) / torch.exp(x - m).sum() * 1.0 if tile >= x.numel() else \
        torch.exp(x - m) / torch.exp(x[:tile] - m).sum()


def _repeat_tiled(x, n_rep):
    return x.repeat(1, n_rep, 1, 1)


def _repeat_dim2(x, n_rep):
    return x.repeat_interleave(n_rep, dim=2)


WRONG = {
    "ch4.online_softmax": [_online_no_rescale, _online_first_max],
    "ch4.attention_flops": [2 * 1024 * 1024 * 64, 4 * 1024 * 64],
    "ch4.repeat_kv": [_repeat_tiled, _repeat_dim2],
    "ch4.gqa_saving": [8.0, 32.0],
    "ch4.speed": ["a", "c"],
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
    v = torch.randn(37)
    assert torch.allclose(solution("ch4.online_softmax")(v, 5), flash.online_softmax(v, 5)[0],
                          atol=1e-6)
    kv = torch.randn(2, 2, 3, 4)
    assert torch.equal(solution("ch4.repeat_kv")(kv, 3), attention.repeat_kv(kv, 3))
    assert solution("ch4.attention_flops") == flash.attention_flops(1024, 1024, 64)
