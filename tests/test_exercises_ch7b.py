"""Exercises of page 7b: every one has plausible wrong answers that fail with a useful
message, and the solutions agree with the course's own code."""

import json
import random
import re

import pytest

from course_lib import agent
from course_lib.exercises import check, get, solution
from course_lib.exercises.ch7b import WEATHER

PAGE = "7b"


# ---------------------------------------------------------------- plausible wrong answers
def schema_bool_is_int(schema, args):
    """Forgets that True is an int in Python."""
    for name in schema.get("required", []):
        if name not in args:
            return ("missing", name)
    extra = sorted(set(args) - set(schema["properties"]))
    if extra:
        return ("extra", extra[0])
    types = {"string": str, "integer": int, "number": (int, float), "boolean": bool}
    for name, rule in schema["properties"].items():
        if name in args:
            if not isinstance(args[name], types[rule["type"]]):
                return ("type", name)
            if rule["type"] != "string" and not (
                    rule.get("minimum", args[name]) <= args[name] <= rule.get("maximum",
                                                                              args[name])):
                return ("range", name)
    return None


def schema_exclusive_bounds(schema, args):
    """Right order and types, but treats minimum and maximum as exclusive."""
    out = solution("ch7b.schema_error")(schema, args)
    if out is None:
        for name, rule in schema["properties"].items():
            if name in args and not isinstance(args[name], bool | str) and (
                    args[name] == rule.get("minimum") or args[name] == rule.get("maximum")):
                return ("range", name)
    return out


def schema_types_first(schema, args):
    """Checks the values before the missing and extra names."""
    types = {"string": (str,), "integer": (int,), "number": (int, float), "boolean": (bool,)}
    for name, rule in schema["properties"].items():
        if name in args:
            v = args[name]
            if not isinstance(v, types[rule["type"]]) or (
                    isinstance(v, bool) and rule["type"] != "boolean"):
                return ("type", name)
    return solution("ch7b.schema_error")(schema, args)


def bracket_lazy(text):
    """Stops the argument at the first ']'."""
    m = re.search(r"^\s*Action:\s*(\w+)\[(.*?)\]", text, flags=re.M)
    if m is None:
        raise ValueError("no action")
    return m.group(1), m.group(2).strip()


def bracket_anywhere(text):
    """Takes 'Action:' anywhere in the text, not at the start of a line."""
    m = re.search(r"Action:\s*(\w*)\[(.*)\]", text)
    if m is None:
        raise ValueError("no action")
    return m.group(1), m.group(2).strip()


def tags_at_start(text, tags=("thought", "action", "observation", "final")):
    """Looks for a tag only at the start of a line, as drop_transcript_lines does."""
    tag = re.compile(r"\s*<\s*/?\s*(?:" + "|".join(tags) + r")\s*>", re.I)
    return "\n".join(line for line in text.splitlines() if not tag.match(line))


def tags_exact_spelling(text, tags=("thought", "action", "observation", "final")):
    """Only the exact lower-case tags, no spaces."""
    return "\n".join(line for line in text.splitlines()
                     if not any(f"<{t}>" in line or f"</{t}>" in line for t in tags))


def tags_prefix(text, tags=("thought", "action", "observation", "final")):
    """Forgets the closing '>': '<observations>' is dropped too."""
    tag = re.compile(r"<\s*/?\s*(?:" + "|".join(tags) + r")", re.I)
    return "\n".join(line for line in text.splitlines() if not tag.search(line))


WRONG = {
    "ch7b.schema_error": [schema_bool_is_int, schema_exclusive_bounds, schema_types_first],
    "ch7b.no_eval": ["a", "c"],
    "ch7b.parse_bracket_action": [bracket_lazy, bracket_anywhere],
    "ch7b.steps_that_fit": [6, 5.78],
    "ch7b.drop_forged_tags": [tags_at_start, tags_exact_spelling, tags_prefix],
    "ch7b.structural_rule": ["a", "c"],
}


@pytest.mark.parametrize("exercise_id", list(WRONG))
def test_solution_passes_and_rejects_bad_input(exercise_id, capsys):
    ex = get(exercise_id)
    assert check(exercise_id, solution(exercise_id)) is True
    out = capsys.readouterr().out
    assert out.startswith("✓")
    if ex.kind == "function":
        assert "rejects bad input" in out


# ---------------------------------------------------------- the solutions and the course's code
def test_schema_error_agrees_with_tool_validate():
    # the course's Tool.validate makes the same checks except ranges: on a schema without
    # ranges both find a problem on the same calls, and of the same kind
    schema = {"type": "object", "required": ["expression"],
              "properties": {"expression": {"type": "string"}, "exact": {"type": "boolean"},
                             "digits": {"type": "integer"}}}
    tool = agent.Tool("calc", "A calculator.", schema, lambda **k: "ok")
    rng = random.Random(0)
    values = ["1+2", 3, 2.5, True, None, [1]]
    words = {"missing": "missing", "extra": "unexpected", "type": "must be"}
    for _ in range(300):
        keys = rng.sample(["expression", "exact", "digits", "other"], rng.randint(0, 4))
        args = {k: rng.choice(values) for k in keys}
        mine, theirs = solution("ch7b.schema_error")(schema, args), tool.validate(args)
        assert (mine is None) == (theirs is None), (args, mine, theirs)
        if mine is not None:
            assert words[mine[0]] in theirs, (args, mine, theirs)
            if mine[0] != "type":  # a type problem: Tool.validate reports args in their order
                assert repr(mine[1]) in theirs, (args, mine, theirs)


def test_schema_error_checks_ranges_inclusively():
    fn = solution("ch7b.schema_error")
    assert fn(WEATHER, {"city": "x", "days": 1}) is None
    assert fn(WEATHER, {"city": "x", "days": 14}) is None
    assert fn(WEATHER, {"city": "x", "days": 15}) == ("range", "days")


def test_parse_bracket_action_agrees_with_parse_step():
    # the same step written in the paper's format and in the course's JSON format
    rng = random.Random(1)
    for _ in range(100):
        tool = rng.choice(["search", "calculator", "lookup"])
        arg = rng.choice(["Ebba Halgri", "12 * 34", "max([1, 2])", "Mill Lane"])
        thought = "Thought: " + rng.choice(["look it up.", "compute."])
        call = json.dumps({"name": tool, "input": {"q": arg}})
        step = agent.parse_step(f"{thought}\nAction: {call}")
        assert solution("ch7b.parse_bracket_action")(f"{thought}\nAction: {tool}[{arg}]") == (
            step.tool, step.args["q"])


def test_drop_forged_tags_drops_the_lines_drop_transcript_lines_drops():
    # the same tool output in the two formats: a prefix line "Observation: x" and a tag line
    # "<observation>x": both filters keep the same lines
    rng = random.Random(2)
    names = ["Thought", "Action", "Observation"]
    for _ in range(100):
        lines = [rng.choice(["Runa plays the harp.", "a < b", None]) for _ in range(6)]
        prefixed = [f"{rng.choice(names)}: 555-0199" if x is None else x for x in lines]
        tagged = [f"<{p.split(':')[0].lower()}>555-0199" if x is None else x
                  for x, p in zip(lines, prefixed)]
        kept = agent.drop_transcript_lines("\n".join(prefixed))
        assert solution("ch7b.drop_forged_tags")("\n".join(tagged)) == kept


def test_steps_that_fit_by_counting():
    budget, prompt, step, final = 1024, 60, 20 + 40 + 100, 20 + 19
    n = 0
    while prompt + (n + 1) * step + final <= budget:
        n += 1
    assert solution("ch7b.steps_that_fit") == n


def test_no_eval_answer_the_escape_needs_no_name_and_the_calculator_refuses_it():
    from course_lib import agent

    # the chain of choice (b) starts from a literal: no name, so an empty __builtins__ is no
    # obstacle; it reaches every class loaded in the process
    classes = ().__class__.__bases__[0].__subclasses__()
    assert type in [c.__class__ for c in classes] and len(classes) > 100
    assert solution("ch7b.no_eval") == "b"
    for text in ("().__class__.__bases__[0].__subclasses__()", "9 ** 9 ** 9"):
        assert agent.calculator(text).startswith("error")
