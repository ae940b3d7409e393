"""Tools described by a JSON schema, safe tools, and a ReAct loop that survives bad calls.

A tool is a function with a name, a description and an input schema (the function-calling
convention: ``{"name", "description", "input_schema"}``). The agent loop asks a policy for the
next step, runs the tool it names, and feeds the result (or the error) back as an observation.
Taught in book/07_rag_agents.md, "Agents".
"""

from __future__ import annotations

import ast
import json
import math
import operator
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Tool", "calculator", "convert_units", "CALCULATOR", "UNITS", "search_tool",
           "ReActAgent", "Step", "parse_step", "render_transcript"]


# --------------------------------------------------------------------------------------------
# Tools
_JSON_TYPES = {"string": str, "number": (int, float), "integer": int, "boolean": bool,
               "object": dict, "array": list}


@dataclass
class Tool:
    """A callable tool with a JSON-schema description of its arguments."""

    name: str
    description: str
    input_schema: dict
    fn: Callable[..., str]

    def __post_init__(self):
        if not isinstance(self.name, str) or not re.fullmatch(r"[a-z_][a-z0-9_]{0,63}", self.name):
            raise ValueError(f"Tool: name must be a short snake_case str, got {self.name!r}")
        if not isinstance(self.description, str) or not self.description.strip():
            raise ValueError("Tool: description must be a non-empty str")
        s = self.input_schema
        if not isinstance(s, dict) or s.get("type") != "object" or not isinstance(
                s.get("properties"), dict):
            raise ValueError("Tool: input_schema must be a JSON schema of type 'object' with "
                             "'properties'")
        if not callable(self.fn):
            raise TypeError("Tool: fn must be callable")

    def spec(self) -> dict:
        """What the model is shown: name, description and input schema."""
        return {"name": self.name, "description": self.description,
                "input_schema": self.input_schema}

    def validate(self, args) -> str | None:
        """None if ``args`` fits the schema, else an error message that names the problem."""
        if not isinstance(args, dict):
            return f"error: arguments must be a JSON object, got {type(args).__name__}"
        props = self.input_schema["properties"]
        missing = [k for k in self.input_schema.get("required", []) if k not in args]
        if missing:
            return f"error: {self.name} is missing required argument(s) {missing}"
        extra = sorted(set(args) - set(props))
        if extra:
            return f"error: {self.name} got unexpected argument(s) {extra}"
        for k, v in args.items():
            want = _JSON_TYPES.get(props[k].get("type"))
            if want and (not isinstance(v, want) or (isinstance(v, bool) and want is not bool)):
                return f"error: argument {k!r} of {self.name} must be {props[k]['type']}"
            if "enum" in props[k] and v not in props[k]["enum"]:
                return f"error: argument {k!r} must be one of {props[k]['enum']}"
        return None

    def __call__(self, args) -> str:
        """Run the tool; a bad call or a failing tool returns an "error: ..." string."""
        problem = self.validate(args)
        if problem:
            return problem
        try:
            return str(self.fn(**args))
        except Exception as exc:  # a tool's failure is an observation, not a crash
            return f"error: {self.name} failed: {type(exc).__name__}: {exc}"


# --------------------------------------------------------------------------------------------
# A calculator that parses arithmetic and never runs code
_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
           ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
           ast.Pow: operator.pow}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_FUNCTIONS = {"sqrt": math.sqrt, "abs": abs, "round": round, "log": math.log, "exp": math.exp}
MAX_CHARS, MAX_DEPTH, MAX_BITS = 500, 50, 4096


class _CalcError(Exception):
    pass


def _bits(x) -> int:
    return x.bit_length() if isinstance(x, int) else 0


def _eval(node, depth: int = 0):
    """Evaluate a whitelisted arithmetic AST: numbers, + - * / // % **, unary +-, and a few
    named functions. Anything else (names, attributes, calls to other things, strings,
    comprehensions, lambdas) is refused before it could run."""
    if depth > MAX_DEPTH:
        raise _CalcError("expression nested too deeply")
    if isinstance(node, ast.Expression):
        return _eval(node.body, depth + 1)
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, int | float):
            raise _CalcError(f"only numbers are allowed, got {type(node.value).__name__}")
        return node.value
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand, depth + 1))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left, depth + 1), _eval(node.right, depth + 1)
        if isinstance(node.op, ast.Pow):
            if abs(right) > 10_000 or (isinstance(right, int) and _bits(left) * abs(right) >
                                        MAX_BITS):
                raise _CalcError("exponent too large")
            if isinstance(left, float) or isinstance(right, float):
                if left < 0 and not float(right).is_integer():
                    raise _CalcError("fractional power of a negative number")
        if isinstance(node.op, ast.Mult) and _bits(left) + _bits(right) > MAX_BITS:
            raise _CalcError("result too large")
        value = _BINARY[type(node.op)](left, right)
        if _bits(value) > MAX_BITS:
            raise _CalcError("result too large")
        return value
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id in _FUNCTIONS and not node.keywords and 1 <= len(node.args) <= 2):
        args = [_eval(a, depth + 1) for a in node.args]
        if any(_bits(a) > 1024 for a in args):
            raise _CalcError("argument too large")
        return _FUNCTIONS[node.func.id](*args)
    raise _CalcError(f"{type(node).__name__} is not allowed")


def calculator(expression: str) -> str:
    """Exact arithmetic on a string, e.g. ``calculator("482 * 917") == "441994"``.

    Parses with ``ast`` and evaluates only numbers, + - * / // % **, parentheses and
    sqrt/abs/round/log/exp: it never calls ``eval``. Bad or hostile input (names, attribute
    access, huge powers, deep nesting, over 500 characters) returns a string that starts with
    "error"; it never raises. Taught in book/07_rag_agents.md.
    """
    try:
        if not isinstance(expression, str):
            return f"error: expression must be a str, got {type(expression).__name__}"
        if len(expression) > MAX_CHARS:
            return f"error: expression longer than {MAX_CHARS} characters"
        if not expression.strip():
            return "error: empty expression"
        if expression.count("(") > MAX_DEPTH:  # the parser itself recurses on nesting
            return "error: expression nested too deeply"
        with warnings.catch_warnings():  # "1j" style literals warn; the answer is our error
            warnings.simplefilter("ignore")
            tree = ast.parse(expression.strip(), mode="eval")
        value = _eval(tree)
        if isinstance(value, float):
            if not math.isfinite(value):
                return "error: result is not a finite number"
            return repr(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
        return str(value)
    except _CalcError as exc:
        return f"error: {exc}"
    except ZeroDivisionError:
        return "error: division by zero"
    except SyntaxError:
        return "error: not an arithmetic expression"
    except (OverflowError, ValueError, TypeError, MemoryError, RecursionError) as exc:
        return f"error: {type(exc).__name__}"
    except Exception as exc:  # the promise is "never raises"; report whatever slipped through
        return f"error: {type(exc).__name__}"


CALCULATOR = Tool(
    name="calculator",
    description="Exact arithmetic. Use for any sum, difference, product or quotient.",
    input_schema={"type": "object",
                  "properties": {"expression": {"type": "string",
                                                "description": "e.g. '482 * 917'"}},
                  "required": ["expression"]},
    fn=calculator)

# metres, kilograms, seconds: each unit's size in its base unit
_UNIT_SIZE = {"m": 1.0, "km": 1000.0, "cm": 0.01, "mile": 1609.344, "foot": 0.3048,
              "inch": 0.0254, "kg": 1.0, "g": 0.001, "pound": 0.45359237, "s": 1.0,
              "minute": 60.0, "hour": 3600.0, "day": 86400.0}
_UNIT_KIND = {"m": "length", "km": "length", "cm": "length", "mile": "length",
              "foot": "length", "inch": "length", "kg": "mass", "g": "mass", "pound": "mass",
              "s": "time", "minute": "time", "hour": "time", "day": "time"}


def convert_units(value: float, from_unit: str, to_unit: str) -> str:
    """Convert a length, mass or duration between units, e.g. 3 mile -> 4828.032 m."""
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(f"convert_units: value must be a finite number, got {value!r}")
    for name, u in (("from_unit", from_unit), ("to_unit", to_unit)):
        if u not in _UNIT_SIZE:
            raise ValueError(f"convert_units: unknown {name} {u!r}")
    if _UNIT_KIND[from_unit] != _UNIT_KIND[to_unit]:
        raise ValueError(f"convert_units: cannot convert {_UNIT_KIND[from_unit]} to "
                         f"{_UNIT_KIND[to_unit]}")
    return f"{value * _UNIT_SIZE[from_unit] / _UNIT_SIZE[to_unit]:.6g} {to_unit}"


UNITS = Tool(
    name="convert_units",
    description="Convert a length, mass or duration from one unit to another.",
    input_schema={"type": "object", "properties": {
        "value": {"type": "number"},
        "from_unit": {"type": "string", "enum": sorted(_UNIT_SIZE)},
        "to_unit": {"type": "string", "enum": sorted(_UNIT_SIZE)}},
        "required": ["value", "from_unit", "to_unit"]},
    fn=convert_units)


def search_tool(retriever, texts: list[str], k: int = 2, method: str = "hybrid") -> Tool:
    """A tool that searches a ``rag.Retriever`` and returns its ``k`` best passages."""
    def search(query: str) -> str:
        hits = retriever.rank(query, method, k)
        return "\n".join(f"[{i}] {texts[i]}" for i in hits)

    return Tool(name="search", description="Search the town register of Veldmoor for facts "
                "about its residents. Returns the best passages with their ids.",
                input_schema={"type": "object", "properties": {"query": {"type": "string"}},
                              "required": ["query"]},
                fn=search)


# --------------------------------------------------------------------------------------------
# The ReAct loop
@dataclass
class Step:
    """One turn: the policy's thought, the action it took (tool and arguments) or its final
    answer, and the observation the loop returned."""

    thought: str = ""
    tool: str | None = None
    args: dict | None = None
    observation: str | None = None
    answer: str | None = None
    raw: str = ""


_ACTION = re.compile(r"^Action:\s*(.*)$", re.M)
_FINAL = re.compile(r"^Final Answer:\s*(.*)$", re.M | re.S)
_THOUGHT = re.compile(r"^Thought:\s*(.*)$", re.M)


def parse_step(text: str) -> Step:
    """Read a policy's output: ``Thought: ...`` then either ``Action: {"name": ..., "input":
    {...}}`` or ``Final Answer: ...``. A malformed action becomes a Step whose observation is
    the parse error (the loop shows it to the policy rather than crashing)."""
    if not isinstance(text, str):
        return Step(observation="error: the policy must return text", raw=repr(text))
    thought = _THOUGHT.search(text)
    step = Step(thought=thought.group(1).strip() if thought else "", raw=text)
    final = _FINAL.search(text)
    action = _ACTION.search(text)
    if final and (not action or final.start() < action.start()):
        step.answer = final.group(1).strip()
        return step
    if not action:
        step.observation = "error: no 'Action:' or 'Final Answer:' line"
        return step
    try:
        call = json.loads(action.group(1))
    except json.JSONDecodeError as exc:
        step.observation = f"error: the action is not valid JSON ({exc.msg})"
        return step
    if not isinstance(call, dict) or not isinstance(call.get("name"), str):
        step.observation = 'error: the action must be {"name": ..., "input": {...}}'
        return step
    step.tool, step.args = call["name"], call.get("input", {})
    return step


@dataclass
class ReActAgent:
    """Thought, action, observation, repeated until a final answer or ``max_steps`` turns.

    ``policy(question, steps, tools) -> str`` is the model: it sees the question, the steps so
    far and the tools' specs, and writes the next "Thought/Action" or "Final Answer". Unknown
    tools, malformed calls and tool errors come back as observations; the loop never raises on
    what the policy writes.
    """

    policy: Callable
    tools: list[Tool] = field(default_factory=list)
    max_steps: int = 5

    def __post_init__(self):
        if not isinstance(self.max_steps, int) or isinstance(self.max_steps, bool) \
                or self.max_steps < 1:
            raise ValueError(f"ReActAgent: max_steps must be an int >= 1, got {self.max_steps!r}")
        names = [t.name for t in self.tools]
        if len(set(names)) != len(names):
            raise ValueError(f"ReActAgent: tool names must be unique, got {names}")
        self.by_name = {t.name: t for t in self.tools}

    def run(self, question: str) -> tuple[str | None, list[Step]]:
        """(final answer or None if the step limit was reached, the steps taken)."""
        if not isinstance(question, str) or not question.strip():
            raise ValueError("ReActAgent.run: question must be a non-empty str")
        specs = [t.spec() for t in self.tools]
        steps: list[Step] = []
        for _ in range(self.max_steps):
            try:
                text = self.policy(question, steps, specs)
            except Exception as exc:
                text = None
                steps.append(Step(observation=f"error: the policy failed: {exc}"))
                continue
            step = parse_step(text)
            steps.append(step)
            if step.answer is not None:
                return step.answer, steps
            if step.observation is not None:  # a parse error
                continue
            tool = self.by_name.get(step.tool)
            step.observation = (tool(step.args) if tool else
                                f"error: unknown tool {step.tool!r}; tools are "
                                f"{sorted(self.by_name)}")
        return None, steps


def render_transcript(question: str, steps: list[Step], answer: str | None) -> str:
    """The whole exchange as text: question, then each thought, action and observation."""
    lines = [f"Question: {question}"]
    for i, s in enumerate(steps, 1):
        if s.thought:
            lines.append(f"  [{i}] Thought: {s.thought}")
        if s.tool is not None:
            lines.append(f"  [{i}] Action: {s.tool}({json.dumps(s.args)})")
        elif s.answer is None and s.raw:
            action = _ACTION.search(s.raw)
            shown = action.group(0) if action else s.raw.strip().splitlines()[-1]
            lines.append(f"  [{i}] (malformed) {shown[:80]}")
        if s.observation is not None:  # a many-line observation stays indented under its step
            pad = "\n" + " " * len(f"  [{i}] Observation: ")
            lines.append(f"  [{i}] Observation: {pad.join(s.observation.splitlines())}")
        if s.answer is not None:
            lines.append(f"  [{i}] Final Answer: {s.answer}")
    if answer is None:
        lines.append("  (stopped: step limit reached)")
    return "\n".join(lines)
