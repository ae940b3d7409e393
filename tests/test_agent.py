import random
import string

import pytest

from course_lib import agent
from course_lib.agent import CALCULATOR, UNITS, ReActAgent, Tool, calculator, parse_step


@pytest.mark.parametrize("expr, want", [
    ("482 * 917", "441994"), ("2 + 3 * 4", "14"), ("(2 + 3) * 4", "20"), ("7 / 2", "3.5"),
    ("7 // 2", "3"), ("-7 % 3", "2"), ("2 ** 10", "1024"), ("sqrt(16)", "4"),
    ("123456789 * 987654321", "121932631112635269"), (" 1 + 1 ", "2"), ("-(-3)", "3"),
])
def test_calculator_is_exact(expr, want):
    assert calculator(expr) == want


@pytest.mark.parametrize("expr", [
    "__import__('os').system('echo hi')", "().__class__.__bases__", "open('x')", "x + 1",
    "lambda: 1", "[1] * 3", "'a' * 3", "1 if 1 else 2", "9 ** 9 ** 9", "2 ** 10000000",
    "10 ** 1000 * 10 ** 1000", "1 / 0", "1e308 * 10", "(" * 100 + "1" + ")" * 100,
    "-" * 400 + "1", "1" * 600, "", "   ", "1 +", "sqrt(-1)", "(-8) ** 0.5", "True + 1",
    "１２ + ３", "exec('1')", "eval('1')", "globals()", "[x for x in ()]", "{1: 2}", "a.b",
    "f'{1}'", "1; 2", "import os", "\x00", "sqrt(10 ** 400)", "round(1, 2, 3)", "abs(x=1)",
])
def test_calculator_refuses_hostile_input_with_an_error_string(expr):
    out = calculator(expr)
    assert isinstance(out, str) and out.startswith("error"), (expr, out)


def test_calculator_refuses_non_strings():
    for bad in (None, 3, b"1+1", ["1"]):
        assert calculator(bad).startswith("error")


def test_calculator_survives_fuzzing_and_runs_no_code(monkeypatch):
    import builtins
    called = []
    # ast.parse compiles to an AST (builtins.compile) and warnings may import: both are fine;
    # evaluating or executing code, or opening a file, is not
    for name in ("eval", "exec", "open"):
        real = getattr(builtins, name)
        monkeypatch.setattr(builtins, name, lambda *a, _r=real, _n=name, **k: (
            called.append(_n), _r(*a, **k))[1])
    rng = random.Random(0)
    alphabet = string.printable + "éπ√∞𝟙\u202e"
    pieces = ["(", ")", "**", "*", "+", "-", "/", "9", "99999", ".", "e", "__", "lambda",
              "import", "sqrt(", ",", "[", "]", "'", "1e308", "~", "not ", "0x", "j"]
    for i in range(3000):
        if i % 2:
            s = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60)))
        else:
            s = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 40)))
        out = calculator(s)
        assert isinstance(out, str)
        assert out.startswith("error") or out.lstrip("-").replace(".", "").replace(
            "e", "").replace("+", "").isdigit() or out in ("inf",), (s, out)
    assert called == [], f"the calculator called {called}"


def test_tool_spec_follows_the_function_calling_convention():
    spec = CALCULATOR.spec()
    assert set(spec) == {"name", "description", "input_schema"}
    assert spec["input_schema"]["required"] == ["expression"]


def test_tool_call_with_missing_extra_or_mistyped_arguments_is_an_error_observation():
    assert CALCULATOR({}).startswith("error") and "missing" in CALCULATOR({})
    out = CALCULATOR({"expression": "1+1", "mode": "fast"})
    assert out.startswith("error") and "unexpected" in out
    assert CALCULATOR({"expression": 3}).startswith("error")
    assert CALCULATOR("1+1").startswith("error")
    assert UNITS({"value": 1, "from_unit": "mile", "to_unit": "parsec"}).startswith("error")
    assert UNITS({"value": 3, "from_unit": "mile", "to_unit": "m"}) == "4828.03 m"
    assert UNITS({"value": 1, "from_unit": "kg", "to_unit": "m"}).startswith("error")


def test_tool_rejects_a_bad_definition():
    with pytest.raises(ValueError, match="name"):
        Tool("Bad Name", "d", {"type": "object", "properties": {}}, str)
    with pytest.raises(ValueError, match="input_schema"):
        Tool("ok", "d", {"type": "string"}, str)
    with pytest.raises(ValueError, match="description"):
        Tool("ok", "", {"type": "object", "properties": {}}, str)


def test_parse_step_reads_actions_answers_and_reports_malformed_calls():
    s = parse_step('Thought: add\nAction: {"name": "calculator", "input": {"expression": "1+1"}}')
    assert (s.thought, s.tool, s.args, s.observation) == (
        "add", "calculator", {"expression": "1+1"}, None)
    assert parse_step("Final Answer: 42").answer == "42"
    assert parse_step("Action: {not json").observation.startswith("error")
    assert parse_step("I think it is 4").observation.startswith("error")
    assert parse_step('Action: ["calculator"]').observation.startswith("error")


def _scripted(outputs):
    def policy(question, steps, specs):
        return outputs[len(steps)]
    return policy


def test_react_loop_feeds_errors_back_and_stops_at_the_step_limit():
    outputs = ["Action: {oops", 'Action: {"name": "nope", "input": {}}',
               'Action: {"name": "calculator", "input": {}}',
               'Action: {"name": "calculator", "input": {"expression": "6*7"}}',
               "Final Answer: 42"]
    answer, steps = ReActAgent(_scripted(outputs), [CALCULATOR], max_steps=5).run("6 times 7?")
    assert answer == "42"
    obs = [s.observation for s in steps[:4]]
    assert obs[0].startswith("error") and "unknown tool" in obs[1]
    assert "missing" in obs[2] and obs[3] == "42"
    answer, steps = ReActAgent(_scripted(outputs), [CALCULATOR], max_steps=2).run("6 times 7?")
    assert answer is None and len(steps) == 2
    assert "step limit" in agent.render_transcript("q", steps, answer)


def test_react_agent_rejects_bad_settings():
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="max_steps"):
            ReActAgent(_scripted([]), [CALCULATOR], max_steps=bad)
    with pytest.raises(ValueError, match="unique"):
        ReActAgent(_scripted([]), [CALCULATOR, CALCULATOR])
    with pytest.raises(ValueError, match="question"):
        ReActAgent(_scripted([]), [CALCULATOR]).run("")


def test_a_crashing_policy_is_an_observation_not_a_crash():
    def policy(question, steps, specs):
        raise RuntimeError("boom")
    answer, steps = ReActAgent(policy, [CALCULATOR], max_steps=2).run("q")
    assert answer is None and all("boom" in s.observation for s in steps)


def test_transcript_shows_the_malformed_action_line():
    steps = [parse_step('Thought: hm\nAction: {"name": "calculator", "input": {')]
    text = agent.render_transcript("q", steps, None)
    assert '(malformed) Action: {"name": "calculator"' in text and "error" in text
