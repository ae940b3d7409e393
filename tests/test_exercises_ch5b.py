"""Exercises of page 5b: every one has plausible wrong answers that fail with a useful
message, and the solutions agree with the course's own code."""

import pytest
import torch
import torch.nn.functional as F  # noqa: F401

from course_lib.exercises import check, get, list_exercises, solution

PAGE = "5b"


def _dpo_swapped(pc, pr, rc, rr, beta=0.1):
    return -F.logsigmoid(beta * ((pr - rr) - (pc - rc))).mean()


def _dpo_no_beta(pc, pr, rc, rr, beta=0.1):
    return -F.logsigmoid((pc - rc) - (pr - rr)).mean()


WRONG = {
    "ch5b.dpo_loss": [_dpo_swapped, _dpo_no_beta],
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
    from course_lib import align

    logps = [torch.randn(5) * 5 for _ in range(4)]
    assert torch.allclose(solution("ch5b.dpo_loss")(*logps, beta=0.3),
                          align.dpo_loss(*logps, beta=0.3))
