"""Exercises of page 6: every one has plausible wrong answers that fail with a useful
message, and the solutions agree with the course's own code."""

import math

import pytest
import torch
import torch.nn.functional as F  # noqa: F401

from course_lib.exercises import check, get, list_exercises, solution

PAGE = 6


def _prune_global(weight, sparsity):
    k = int(sparsity * weight.numel())
    if k == 0:
        return weight.clone()
    thr = weight.abs().flatten().kthvalue(k).values
    return torch.where(weight.abs() <= thr, torch.zeros_like(weight), weight)


def _prune_round_up(weight, sparsity):
    k = math.ceil(sparsity * weight.shape[1] + 1e-9)
    out = weight.clone()
    if k:
        out.scatter_(1, weight.abs().argsort(1)[:, :k], 0.0)
    return out


def _mask_smallest(weight):
    g = weight.abs().reshape(weight.shape[0], -1, 4)
    idx = (-g).topk(2, -1).indices
    return torch.zeros_like(g, dtype=torch.bool).scatter(-1, idx, True).reshape(weight.shape)


def _mask_signed(weight):
    g = weight.reshape(weight.shape[0], -1, 4)
    idx = g.topk(2, -1).indices
    return torch.zeros_like(g, dtype=torch.bool).scatter(-1, idx, True).reshape(weight.shape)


WRONG = {
    "ch6.magnitude_prune": [_prune_global, _prune_round_up],
    "ch6.mask_2_4": [_mask_smallest, _mask_signed],
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
    from course_lib import prune

    w = torch.randn(6, 20)
    for sparsity in (0.0, 0.3, 0.55, 0.9):
        assert torch.equal(solution("ch6.magnitude_prune")(w, sparsity),
                           prune.magnitude_prune(w, sparsity))
    w = torch.randn(3, 12)
    assert torch.equal(solution("ch6.mask_2_4")(w),
                       prune.magnitude_prune(w, 0.5, n_m=(2, 4)) != 0)
