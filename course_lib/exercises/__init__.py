"""Exercises with instant, offline feedback: every chapter ends with problems to solve.

Taught in: the "Exercises" section at the end of every chapter.

    >>> from course_lib.exercises import check, list_exercises, solution
    >>> def my_softmax(x):
    ...     raise NotImplementedError("your code here")
    >>> check("ch1.softmax", my_softmax)          # prints a report, returns False
    False

Three kinds of exercise:

- **function**: write a function; ``check`` runs it on hand-picked edge cases and random
  cases against the reference. The report names the first failing case as a call you can
  paste and rerun. Bad inputs should raise ``ValueError`` or ``TypeError``; a right
  algorithm that does not is told so in a hint, and still passes.
- **number**: predict a number before computing it; checked with a stated tolerance.
- **choice**: explain a measured result by picking one sentence (a letter).

``check`` never runs text as code, needs no network and never raises on a wrong, stubbed or
crashing answer: it prints what passed, the first failure and a hint, and returns a bool.
``solution(id)`` reveals the worked answer and why, only when asked; ``show(id)`` prints the
one-line summary in a terminal (the full statement is the chapter's Markdown).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

__all__ = ["Case", "Exercise", "Solution", "check", "list_exercises", "solution", "get", "show",
           "call_repr"]


@dataclass
class Case:
    """One call of the learner's function: positional and keyword arguments."""

    args: tuple
    kwargs: dict = field(default_factory=dict)
    note: str = ""          # what the case probes ("all values equal", "n = 1", ...)


@dataclass
class Exercise:
    id: str                  # "chN.name"
    title: str
    kind: str                # "function" | "number" | "choice"
    prompt: str
    hint: str
    reference: object        # the worked solution: a callable, a number or a letter
    cases: Callable[[], list[Case]] | None = None    # function kind: the cases to run
    bad_cases: Callable[[], list[Case]] | None = None  # inputs that must raise
    atol: float = 1e-6       # function kind: tolerance on tensor/float outputs
    rtol: float = 1e-5
    tolerance: float = 0.0   # number kind: relative tolerance (0 = exact)
    choices: dict[str, str] | None = None          # choice kind: letter -> sentence
    explanations: dict[str, str] | None = None     # choice kind: why each letter is (not) it
    section: str = ""        # where the chapter teaches it
    why: str = ""            # the worked reasoning, shown by ``solution(id)`` with the answer
    transfer: bool = False   # the idea in a setting the page did not show (not a retyping)


_REGISTRY: dict[str, Exercise] = {}


def register(ex: Exercise) -> Exercise:
    if ex.id in _REGISTRY:
        raise ValueError(f"exercise {ex.id!r} is registered twice")
    if ex.kind not in ("function", "number", "choice"):
        raise ValueError(f"exercise {ex.id!r}: unknown kind {ex.kind!r}")
    _REGISTRY[ex.id] = ex
    return ex


def _load_all() -> None:
    # Importing the chapter modules registers their exercises (one module per chapter page).
    from course_lib.exercises import (  # noqa: F401
        ch1,
        ch2,
        ch3,
        ch4,
        ch5,
        ch5b,
        ch6,
        ch6b,
        ch7,
        ch7b,
    )


def list_exercises(chapter: int | str | None = None) -> list[str]:
    """Exercise ids like "ch3.group_absmax", in chapter order; only one page's with ``chapter=``
    3 or "5b" (the pages 05b, 06b and 07b have their own: "ch5b.dpo_gradient")."""
    _load_all()
    ids = list(_REGISTRY)
    if chapter is not None:
        if isinstance(chapter, bool) or not isinstance(chapter, int | str):
            raise TypeError(f"chapter must be a number or a page like '5b', got {chapter!r}")
        ids = [i for i in ids if i.split(".")[0] == f"ch{chapter}"]
    return ids


def get(exercise_id: str) -> Exercise:
    """The exercise record (prompt, hint, kind); ValueError for an unknown id."""
    _load_all()
    if not isinstance(exercise_id, str) or exercise_id not in _REGISTRY:
        raise ValueError(f"unknown exercise {exercise_id!r}; list_exercises() gives the ids")
    return _REGISTRY[exercise_id]


class Solution:
    """The worked answer of one exercise, shown only when asked for.

    In a notebook it displays the answer (a function's source, a number or a letter) and the
    reasoning; ``check(id, solution(id))`` passes; a function solution can be called and a
    number or letter compares equal to its value, so tests can hold it to the course's code.
    """

    def __init__(self, ex: Exercise):
        self.exercise, self.reference = ex, ex.reference
        if callable(ex.reference):
            self.__wrapped__ = ex.reference     # so notebook.source(solution(id)) shows it

    def __call__(self, *args, **kwargs):
        if not callable(self.reference):
            raise TypeError(f"the solution of {self.exercise.id} is a {self.exercise.kind}, "
                            "not a function")
        return self.reference(*args, **kwargs)

    def __eq__(self, other):
        return self.reference == (other.reference if isinstance(other, Solution) else other)

    __hash__ = None

    def _answer_lines(self) -> list[str]:
        ex, ref = self.exercise, self.reference
        if ex.kind == "function":
            import inspect
            code = inspect.getsource(ref).rstrip("\n")
            return ["```python", code, "```"]
        if ex.kind == "number":
            return [f"The answer is **{ref:,}**." if isinstance(ref, int)
                    else f"The answer is **{ref:,.6g}**."]
        sentence = (ex.choices or {}).get(ref, "")
        lines = [f"The answer is **({ref})**: {sentence}"]
        if ex.explanations:
            lines += [""] + [f"- ({k}) {v}" for k, v in ex.explanations.items()]
        return lines

    def _lines(self) -> list[str]:
        ex = self.exercise
        lines = [f"**Solution: {ex.title}** (`{ex.id}`)", ""] + self._answer_lines()
        if ex.why:
            lines += ["", ex.why]
        return lines

    def _repr_markdown_(self) -> str:
        return "\n".join(self._lines())

    def __repr__(self) -> str:
        return "\n".join(self._lines()).replace("**", "")


def solution(exercise_id: str) -> Solution:
    """The worked answer, revealed on demand: run ``solution("ch6.gptq_column")`` in a cell to
    see the code (or number, or letter) and why. It passes its own check."""
    return Solution(get(exercise_id))


# ------------------------------------------------------------------------------ reporting
def _value_repr(v) -> str:
    """A Python expression that rebuilds ``v`` (tensors as torch.tensor(...))."""
    if isinstance(v, torch.Tensor):
        dtype = "" if v.dtype == torch.float32 else f", dtype={v.dtype}"
        return f"torch.tensor({v.tolist()!r}{dtype})"
    if isinstance(v, float) and not math.isfinite(v):
        return f"float('{v}')"
    if isinstance(v, list | tuple):
        inner = ", ".join(_value_repr(x) for x in v)
        return f"[{inner}]" if isinstance(v, list) else f"({inner}{',' if len(v) == 1 else ''})"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_value_repr(k)}: {_value_repr(x)}" for k, x in v.items()) + "}"
    return repr(v)


def call_repr(name: str, case: Case) -> str:
    """The case as a call a learner can paste into a cell and rerun."""
    parts = [_value_repr(a) for a in case.args]
    parts += [f"{k}={_value_repr(v)}" for k, v in case.kwargs.items()]
    return f"{name}({', '.join(parts)})"


def _short(v, limit: int = 300) -> str:
    text = _value_repr(v)
    return text if len(text) <= limit else text[:limit] + " ..."


def _compare(expected, got, atol: float, rtol: float, path: str = "output") -> str | None:
    """None when ``got`` matches ``expected``; else what differs, in words."""
    if isinstance(expected, torch.Tensor):
        if not isinstance(got, torch.Tensor):
            return f"{path} should be a torch.Tensor, got {type(got).__name__}"
        if got.shape != expected.shape:
            return f"{path} has shape {tuple(got.shape)}, expected {tuple(expected.shape)}"
        if expected.dtype == torch.bool or not expected.is_floating_point():
            if got.dtype.is_floating_point and not expected.dtype.is_floating_point:
                return f"{path} has dtype {got.dtype}, expected {expected.dtype} (whole numbers)"
            if not torch.equal(got.to(expected.dtype), expected):
                bad = (got.to(expected.dtype) != expected).nonzero()[0].tolist()
                return (f"{path} differs at index {bad}: got {got[tuple(bad)].item()}, "
                        f"expected {expected[tuple(bad)].item()}")
            return None
        got_f, exp_f = got.double(), expected.double()
        nan_exp, nan_got = torch.isnan(exp_f), torch.isnan(got_f)
        if not torch.equal(nan_exp, nan_got):
            where = (nan_exp != nan_got).nonzero()[0].tolist()
            return (f"{path} at index {where}: NaN expected {bool(nan_exp[tuple(where)])}, "
                    f"got {got_f[tuple(where)].item()}")
        ok = torch.isclose(got_f, exp_f, atol=atol, rtol=rtol, equal_nan=True)
        if not bool(ok.all()):
            where = (~ok).nonzero()[0].tolist()
            return (f"{path} differs at index {where}: got {got_f[tuple(where)].item():.6g}, "
                    f"expected {exp_f[tuple(where)].item():.6g} (tolerance {atol:g} + "
                    f"{rtol:g} x |expected|)")
        return None
    if isinstance(expected, tuple | list):
        if not isinstance(got, tuple | list) or len(got) != len(expected):
            return (f"{path} should be a {type(expected).__name__} of {len(expected)} items, "
                    f"got {_short(got, 80)}")
        for i, (e, g) in enumerate(zip(expected, got)):
            msg = _compare(e, g, atol, rtol, f"{path}[{i}]")
            if msg:
                return msg
        return None
    if isinstance(expected, bool) or isinstance(expected, str):
        return None if got == expected else f"{path} is {got!r}, expected {expected!r}"
    if isinstance(expected, int | float):
        if isinstance(got, torch.Tensor) and got.numel() == 1:
            got = got.item()
        if not isinstance(got, int | float) or isinstance(got, bool):
            return f"{path} should be a number, got {type(got).__name__}"
        if math.isnan(expected) and math.isnan(got):
            return None
        if not math.isclose(got, expected, rel_tol=rtol, abs_tol=atol):
            return f"{path} is {got!r}, expected {expected!r}"
        return None
    if got == expected:
        return None
    return f"{path} is {_short(got, 80)}, expected {_short(expected, 80)}"


def _not_implemented(name: str) -> bool:
    print(f"✗ {name}: not implemented yet. Replace `raise NotImplementedError` with your code, "
          "run the cell, then run the check again.")
    return False


def _check_function(ex: Exercise, answer) -> bool:
    if not callable(answer):
        print(f"✗ {ex.id}: expected a function, got {type(answer).__name__}.")
        return False
    name = getattr(answer, "__name__", "answer")
    cases = ex.cases() if ex.cases else []
    bad = ex.bad_cases() if ex.bad_cases else []
    passed = 0
    for case in cases:
        expected = ex.reference(*copy.deepcopy(case.args), **copy.deepcopy(case.kwargs))
        try:
            got = answer(*copy.deepcopy(case.args), **copy.deepcopy(case.kwargs))
        except NotImplementedError:
            return _not_implemented(ex.id)
        except Exception as exc:  # the learner's code crashed: report, never raise
            print(f"✗ {ex.id}: {passed} of {len(cases)} cases passed, then this call raised "
                  f"{type(exc).__name__}: {exc}\n    {call_repr(name, case)}"
                  + (f"\n    (case: {case.note})" if case.note else "")
                  + f"\n  Hint: {ex.hint}")
            return False
        msg = _compare(expected, got, ex.atol, ex.rtol)
        if msg:
            print(f"✗ {ex.id}: {passed} of {len(cases)} cases passed. First failure:\n"
                  f"    {call_repr(name, case)}"
                  + (f"\n    (case: {case.note})" if case.note else "")
                  + f"\n  {msg}.\n  Expected: {_short(expected)}\n  Got:      {_short(got)}"
                  f"\n  Hint: {ex.hint}")
            return False
        passed += 1
    # The algorithm is right. Input checks are a separate lesson: a function that does not
    # reject bad input is told so, as a hint, and still passes.
    unchecked = None
    for case in bad:
        try:
            got = answer(*copy.deepcopy(case.args), **copy.deepcopy(case.kwargs))
        except NotImplementedError:
            return _not_implemented(ex.id)
        except (ValueError, TypeError):
            continue
        except Exception as exc:
            unchecked = (case, f"raised {type(exc).__name__}: {exc}")
            break
        unchecked = (case, f"returned {_short(got, 80)}")
        break
    print(f"✓ {ex.id}: the algorithm is right: all {len(cases)} cases agree with the reference.")
    if unchecked is None:
        if bad:
            print(f"  It also rejects bad input ({len(bad)} case{'s' if len(bad) != 1 else ''}"
                  " raise ValueError or TypeError).")
        return True
    case, what = unchecked
    print("  One more step, for robustness: bad input is not rejected with a clear error. This "
          f"call {what}\n    {call_repr(name, case)}"
          + (f"\n    (case: {case.note})" if case.note else "")
          + "\n  A library function raises ValueError (or TypeError) here, naming the problem.")
    return True


def _check_number(ex: Exercise, answer) -> bool:
    if answer is None or answer is NotImplemented or answer is ...:
        print(f"✗ {ex.id}: not answered yet. Put your number in the cell and run the check.")
        return False
    if isinstance(answer, torch.Tensor) and answer.numel() == 1:
        answer = answer.item()
    if isinstance(answer, bool) or not isinstance(answer, int | float):
        print(f"✗ {ex.id}: expected a number, got {type(answer).__name__} {answer!r}.")
        return False
    expected = float(ex.reference)
    if not math.isfinite(answer):
        print(f"✗ {ex.id}: {answer!r} is not a finite number.\n  Hint: {ex.hint}")
        return False
    tol = ex.tolerance
    ok = math.isclose(answer, expected, rel_tol=tol, abs_tol=0.0 if tol else 1e-12)
    stated = f"within {tol:.0%}" if tol >= 0.01 else (f"within {tol:g}" if tol else "exactly")
    if ok:
        what = f"{stated} of {expected:,.6g}" if tol else f"exactly {expected:,.6g}"
        print(f"✓ {ex.id}: {answer:,} is right ({what}).")
        return True
    ratio = answer / expected if expected else math.inf
    print(f"✗ {ex.id}: {answer:,} is not right (the answer must be {stated}); yours is "
          f"{ratio:.3g}x the answer.\n  Hint: {ex.hint}")
    return False


def _check_choice(ex: Exercise, answer) -> bool:
    if answer is None or answer is ...:
        print(f"✗ {ex.id}: not answered yet. Set your letter and run the check.")
        return False
    letter = str(answer).strip().lower()
    if letter not in ex.choices:
        print(f"✗ {ex.id}: answer with one of {', '.join(ex.choices)}; got {answer!r}.")
        return False
    why = (ex.explanations or {}).get(letter, "")
    if letter == ex.reference:
        print(f"✓ {ex.id}: ({letter}) is right. {why}".rstrip())
        return True
    print(f"✗ {ex.id}: ({letter}) is not it. {why}\n  Hint: {ex.hint}".rstrip())
    return False


def check(exercise_id: str, answer) -> bool:
    """Check an answer: print what passed, the first failure and a hint; return True/False.

    A function is right when it agrees with the reference on every case; one that does not
    reject bad input still passes, with a hint about it. Never raises on a wrong, stubbed or
    crashing answer (an unknown id is a ValueError).
    """
    ex = get(exercise_id)
    if isinstance(answer, Solution):
        answer = answer.reference
    if ex.kind == "function":
        return _check_function(ex, answer)
    if ex.kind == "number":
        return _check_number(ex, answer)
    return _check_choice(ex, answer)


def show(exercise_id: str) -> str:
    """The exercise's prompt as text (for a chapter cell or a terminal)."""
    ex = get(exercise_id)
    lines = [f"{ex.id}: {ex.title}", ex.prompt]
    if ex.kind == "choice":
        lines += [f"  ({k}) {v}" for k, v in ex.choices.items()]
    return "\n".join(lines)
