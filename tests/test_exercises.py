"""Every exercise: its solution passes, a stub says "not implemented yet", and at least two
plausible wrong answers fail with a message that says what is wrong. Solutions are held to
the course's own implementations where the course has one."""

import math

import pytest
import torch

from course_lib import attention, memory
from course_lib.exercises import Case, call_repr, check, get, list_exercises, solution
from course_lib.models import Block, GPTConfig

IDS = list_exercises()


def _stub(*args, **kwargs):
    raise NotImplementedError("your code here")


# ---------------------------------------------------------------- plausible wrong answers
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


def _kv_no_two(batch, seq, n_layers, n_kv_heads, head_dim, bytes_per_value=2):
    return batch * seq * n_layers * n_kv_heads * head_dim * bytes_per_value


def _kv_no_bytes(batch, seq, n_layers, n_kv_heads, head_dim, bytes_per_value=2):
    return 2 * batch * seq * n_layers * n_kv_heads * head_dim


WRONG = {
    "ch1.softmax": [_softmax_no_max, _softmax_dim0],
    "ch1.causal_mask": [_causal_strict, _causal_upper],
    "ch1.top_p": [_top_p_excl, _top_p_no_renorm],
    "ch1.block_params": [4 * 128 * 128 + 2 * 128 * 512, 198_272 + 4 * 4 * 128],
    "ch1.nats": [math.log2(4), 0.25],
    "ch1.why_scale": ["a", "d"],
    "ch2.adam_bytes_13b": [13e9 * 4, 13e9 * 16],
    "ch2.kv_cache_bytes": [_kv_no_two, _kv_no_bytes],
    "ch2.kv_llama7b": [2 * 4096 * 32 * 32 * 128, 4096 * 32 * 32 * 128 * 2],
    "ch2.zero_stage": ["a", "b"],
    "ch2.ddp_memory": ["a", "c"],
}


PAGES = (1, 2, 3, 4, 5, "5b", 6, "6b", 7, "7b")


def test_every_chapter_page_has_four_to_six_exercises():
    for page in PAGES:
        assert 4 <= len(list_exercises(page)) <= 6, page
    assert sum(len(list_exercises(page)) for page in PAGES) == len(IDS)


@pytest.mark.parametrize("exercise_id", IDS)
def test_solution_passes(exercise_id, capsys):
    assert check(exercise_id, solution(exercise_id)) is True
    assert "✓" in capsys.readouterr().out


@pytest.mark.parametrize("exercise_id", IDS)
def test_stub_says_not_implemented(exercise_id, capsys):
    stub = _stub if get(exercise_id).kind == "function" else None
    assert check(exercise_id, stub) is False
    out = capsys.readouterr().out
    assert "not implemented yet" in out or "not answered yet" in out
    assert "Traceback" not in out


def test_every_exercise_of_chapters_1_to_4_has_wrong_answers():
    # pages 3 to 7b keep theirs beside their own tests (tests/test_exercises_ch5.py ...)
    assert set(WRONG) == {i for page in (1, 2) for i in list_exercises(page)}


@pytest.mark.parametrize("exercise_id", list(WRONG))
def test_wrong_answers_fail_with_a_useful_message(exercise_id, capsys):
    ex = get(exercise_id)
    assert len(WRONG[exercise_id]) >= 2
    for wrong in WRONG[exercise_id]:
        assert check(exercise_id, wrong) is False, wrong
        out = capsys.readouterr().out
        assert out.startswith("✗") and "Traceback" not in out
        if ex.kind == "function":
            assert "Hint:" in out or "bad input" in out
            assert "(" in out  # the failing call, ready to paste


def test_a_right_algorithm_without_input_checks_passes_with_a_hint(capsys):
    def softmax_unchecked(x):                 # right maths, no validation at all
        return torch.softmax(torch.as_tensor(x, dtype=torch.float32), dim=-1)
    assert get("ch1.softmax").bad_cases, "the example needs an exercise with bad inputs"
    assert check("ch1.softmax", softmax_unchecked) is True
    out = capsys.readouterr().out
    assert out.startswith("✓") and "bad input is not rejected" in out and "ValueError" in out


def test_solution_is_revealed_on_demand_and_passes_its_check(capsys):
    sol = solution("ch1.softmax")
    shown = sol._repr_markdown_()
    assert "```python" in shown and "def " in shown and "ch1.softmax" in shown
    assert check("ch1.softmax", sol) is True
    letter = solution("ch1.why_scale")
    assert letter == get("ch1.why_scale").reference and "The answer is" in repr(letter)
    with pytest.raises(TypeError, match="not a function"):
        letter(1)


def test_a_crashing_answer_is_reported_not_raised(capsys):
    def crash(x):
        return x.no_such_method()
    assert check("ch1.softmax", crash) is False
    assert "AttributeError" in capsys.readouterr().out


def test_failing_case_is_a_call_that_reruns():
    case = Case((torch.tensor([[1.0, -2.0]]), 8), {"k": float("inf")})
    text = call_repr("f", case)
    assert text == "f(torch.tensor([[1.0, -2.0]]), 8, k=float('inf'))"


def test_check_rejects_unknown_ids_and_never_runs_text(capsys):
    with pytest.raises(ValueError, match="unknown exercise"):
        check("ch9.nothing", 1)
    # a string answer to a function exercise is reported, not executed
    assert check("ch1.softmax", "__import__('os').system('false')") is False
    assert "expected a function" in capsys.readouterr().out


# ------------------------------------------------- solutions held to the course's own code
def test_solutions_match_course_lib():
    x = torch.randn(4, 9)
    assert torch.allclose(solution("ch1.softmax")(x), attention.softmax(x), atol=1e-6)
    for n in (1, 3, 7):
        assert torch.equal(solution("ch1.causal_mask")(n), attention.causal_mask(n))
    cfg = GPTConfig(vocab_size=512, block_size=64, n_layer=1, n_head=4, d_model=128)
    block_params = sum(p.numel() for p in Block(cfg).parameters())
    assert solution("ch1.block_params") == block_params
    assert solution("ch2.kv_llama7b") == memory.kv_cache_bytes(1, 4096, 32, 32, 128, "fp16")
    assert solution("ch2.kv_cache_bytes")(2, 10, 3, 4, 8, 2) == memory.kv_cache_bytes(
        2, 10, 3, 4, 8, "fp16")


