"""The agent's calculator and ReAct parsing on the inputs a subtle bug would get wrong:
operators outside the whitelist, keyword arguments, an action written before a final answer,
and the exact step limit. (tests/test_agent.py holds the module's main tests; these are the
cases tools/mutants.py showed missing.)"""

import pytest

from course_lib.agent import CALCULATOR, ReActAgent, calculator, parse_step


@pytest.mark.parametrize("expr", [
    "2 ^ 3", "2 ^ 10 ** 9", "1 << 5", "1 << 10 ** 9", "8 >> 1", "6 & 3", "6 | 3", "~5",
    "not 0", "not 1", "1 < 2", "1 == 1", "1 and 2", "0 or 3", "2 @ 3", "-~1", "1 if 1 else 0",
])
def test_operators_outside_the_whitelist_are_refused(expr):
    out = calculator(expr)
    assert isinstance(out, str) and out.startswith("error"), (expr, out)


@pytest.mark.parametrize("expr, want", [
    ("2 ** 3", "8"), ("-(+5)", "-5"), ("7 // 2", "3"), ("7 % 4", "3"), ("round(2.567, 2)", "2.57"),
])
def test_the_whitelisted_operators_still_work(expr, want):
    assert calculator(expr) == want


@pytest.mark.parametrize("expr", ["round(2.567, ndigits=2)", "round(2.5, x=1)", "sqrt(4, y=2)"])
def test_keyword_arguments_are_refused_not_dropped(expr):
    out = calculator(expr)
    assert out.startswith("error"), (expr, out)


def test_an_action_written_before_a_final_answer_is_the_step():
    text = ('Thought: compute first\n'
            'Action: {"name": "calculator", "input": {"expression": "6*7"}}\n'
            'Final Answer: 42')
    step = parse_step(text)
    assert (step.tool, step.args, step.answer) == ("calculator", {"expression": "6*7"}, None)
    # the other way round the answer comes first and ends the loop (it runs to the end of
    # the text, so the line after it is part of the answer, not a tool call)
    step = parse_step('Final Answer: 42\nAction: {"name": "calculator", "input": {}}')
    assert step.tool is None and step.answer.startswith("42")


def test_the_loop_takes_exactly_max_steps_turns():
    calls = []

    def policy(question, steps, specs):
        calls.append(len(steps))
        if len(steps) == 2:
            return "Final Answer: 42"
        return 'Action: {"name": "calculator", "input": {"expression": "6*7"}}'

    agent = ReActAgent(policy, [CALCULATOR], max_steps=3)
    try:
        answer, steps = agent.run("6 times 7?")   # the answer comes on the third and last turn
    finally:
        agent.close()
    assert answer == "42" and len(steps) == 3 and calls == [0, 1, 2]
    assert [s.observation for s in steps[:2]] == ["42", "42"]
