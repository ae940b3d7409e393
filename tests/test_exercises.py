"""The exercise framework, on throwaway exercises, and every exercise: its solution passes
and a stub says "not implemented yet". Each page's wrong answers, and its solutions held to
the course's own code, are in tests/test_exercises_chN.py; every wrong answer is checked here."""

import importlib

import pytest
import torch

from course_lib.exercises import Case, call_repr, check, get, list_exercises, solution

IDS = list_exercises()


def _stub(*args, **kwargs):
    raise NotImplementedError("your code here")


# ---------------------------------------------------------------- plausible wrong answers


PAGES = (1, 2, 3, 4, 5, "5b", 6, "6b", 7, "7b")
# Each page's plausible wrong answers live beside its own tests (tests/test_exercises_chN.py,
# importable: pytest puts tests/ on sys.path); the checks on them are here, once.
WRONG = {k: v for page in PAGES
         for k, v in importlib.import_module(f"test_exercises_ch{page}").WRONG.items()}


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


def _double(x):
    """Twice a tensor; a ValueError for an empty one (the throwaway exercise's reference)."""
    if not isinstance(x, torch.Tensor) or x.numel() == 0:
        raise ValueError("double: x must be a non-empty tensor")
    return 2 * x


@pytest.fixture
def toy():
    """A throwaway exercise of each kind, so the framework's tests do not depend on which
    exercises the chapters ask today."""
    from course_lib.exercises import _REGISTRY, Exercise
    made = [
        Exercise(id="ch0.double", title="Double it", kind="function", prompt="2x",
                 hint="Multiply by two.", reference=_double, why="Twice x.",
                 cases=lambda: [Case((torch.tensor([1.0, -2.0]),), note="two values")],
                 bad_cases=lambda: [Case((torch.tensor([]),), note="empty")]),
        Exercise(id="ch0.letter", title="Pick one", kind="choice", prompt="?",
                 hint="The second.", reference="b", choices={"a": "no", "b": "yes"},
                 explanations={"a": "Not this.", "b": "This."}),
    ]
    for ex in made:
        _REGISTRY[ex.id] = ex
    yield
    for ex in made:
        _REGISTRY.pop(ex.id)


def test_every_exercise_has_wrong_answers():
    assert set(WRONG) == set(IDS)


@pytest.mark.parametrize("exercise_id", IDS)
def test_wrong_answers_fail_with_a_useful_message(exercise_id, capsys):
    ex = get(exercise_id)
    assert len(WRONG[exercise_id]) >= 2
    for wrong in WRONG[exercise_id]:
        assert check(exercise_id, wrong) is False, wrong
        out = capsys.readouterr().out
        assert out.startswith("✗") and "Traceback" not in out and "Hint:" in out
        if ex.kind == "function":
            assert "(" in out  # the failing call, ready to paste


def test_a_right_algorithm_without_input_checks_passes_with_a_hint(toy, capsys):
    def double_unchecked(x):                  # right maths, no validation at all
        return x * 2
    assert check("ch0.double", double_unchecked) is True
    out = capsys.readouterr().out
    assert out.startswith("✓") and "bad input is not rejected" in out and "ValueError" in out


def test_solution_is_revealed_on_demand_and_passes_its_check(toy, capsys):
    sol = solution("ch0.double")
    shown = sol._repr_markdown_()
    assert "```python" in shown and "def _double" in shown and "Twice x." in shown
    assert check("ch0.double", sol) is True
    assert torch.equal(sol(torch.tensor([3.0])), torch.tensor([6.0]))
    letter = solution("ch0.letter")
    assert letter == "b" and "The answer is (b): yes" in repr(letter)
    with pytest.raises(TypeError, match="not a function"):
        letter(1)


def test_a_crashing_answer_is_reported_not_raised(toy, capsys):
    def crash(x):
        return x.no_such_method()
    assert check("ch0.double", crash) is False
    assert "AttributeError" in capsys.readouterr().out


def test_failing_case_is_a_call_that_reruns():
    case = Case((torch.tensor([[1.0, -2.0]]), 8), {"k": float("inf")})
    text = call_repr("f", case)
    assert text == "f(torch.tensor([[1.0, -2.0]]), 8, k=float('inf'))"


def test_check_rejects_unknown_ids_and_never_runs_text(toy, capsys):
    with pytest.raises(ValueError, match="unknown exercise"):
        check("ch9.nothing", 1)
    # a string answer to a function exercise is reported, not executed
    assert check("ch0.double", "__import__('os').system('false')") is False
    assert "expected a function" in capsys.readouterr().out


def test_show_prints_the_summary_for_a_terminal(toy):
    from course_lib.exercises import show
    assert show("ch0.letter") == "ch0.letter: Pick one\n?\n  (a) no\n  (b) yes"
