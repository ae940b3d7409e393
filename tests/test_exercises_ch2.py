"""Exercises of page 2: every one has plausible wrong answers that fail with a useful
message, and the solutions agree with the course's own code."""


import pytest

from course_lib import memory
from course_lib.exercises import check, get, list_exercises, solution

PAGE = 2


def _kv_no_two(batch, seq, n_layers, n_kv_heads, head_dim, bytes_per_value=2):
    return batch * seq * n_layers * n_kv_heads * head_dim * bytes_per_value


def _kv_no_bytes(batch, seq, n_layers, n_kv_heads, head_dim, bytes_per_value=2):
    return 2 * batch * seq * n_layers * n_kv_heads * head_dim


WRONG = {
    "ch2.adam_bytes_13b": [13e9 * 4, 13e9 * 16],
    "ch2.kv_cache_bytes": [_kv_no_two, _kv_no_bytes],
    "ch2.kv_llama7b": [2 * 4096 * 32 * 32 * 128, 4096 * 32 * 32 * 128 * 2],
    "ch2.zero_stage": ["a", "b"],
    "ch2.ddp_memory": ["a", "c"],
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
    assert solution("ch2.kv_llama7b") == memory.kv_cache_bytes(1, 4096, 32, 32, 128, "fp16")
    assert solution("ch2.kv_cache_bytes")(2, 10, 3, 4, 8, 2) == memory.kv_cache_bytes(
        2, 10, 3, 4, 8, "fp16")
