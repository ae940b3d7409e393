"""Tools: a name, a description and a JSON schema of the arguments; a calculator that parses
arithmetic and never runs code; a unit converter. Taught in book/07b_agents.md, sections 1-2."""

from __future__ import annotations

import ast
import itertools
import math
import operator
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Tool", "calculator", "convert_units", "CALCULATOR", "UNITS", "MAX_CHARS",
           "MAX_DEPTH", "MAX_BITS", "MAX_NDIGITS"]


# Tools
_JSON_TYPES = {"string": str, "number": (int, float), "integer": int, "boolean": bool,
               "object": dict, "array": list}


@dataclass
class Tool:
    """A callable tool with a JSON-schema description of its arguments; ``fn`` returns a str.
    Taught in book/07b_agents.md, section 1."""

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
        """Run the tool in this process, with no limits (``ReActAgent`` runs it in a worker); a
        bad call, a failing tool or a result that is not a str returns an "error: ..." string."""
        return self.validate(args) or _run_tool(self, args)


def _run_tool(tool: Tool, args: dict) -> str:
    """``tool.fn(**args)`` as an observation: its str, or an "error: ..." string."""
    try:
        result = tool.fn(**args)
    except MemoryError:
        return f"error: {tool.name} ran out of memory"
    except Exception as exc:  # a tool's failure is an observation, not a crash
        return f"error: {tool.name} failed: {type(exc).__name__}: {exc}"
    if not isinstance(result, str):
        return f"error: {tool.name} returned {type(result).__name__}, not a str"
    return result


# --------------------------------------------------------------------------------------------
# A calculator that parses arithmetic and never runs code
_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
           ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
           ast.Pow: operator.pow}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_FUNCTIONS = {"sqrt": math.sqrt, "abs": abs, "round": round, "log": math.log, "exp": math.exp}
MAX_CHARS, MAX_DEPTH, MAX_BITS = 500, 50, 4096
MAX_NDIGITS = 400  # arguments have at most 1024 bits, 309 digits: round(x, -400) is 0


class _CalcError(Exception):
    pass


def _bits(x) -> int:
    return x.bit_length() if isinstance(x, int) else 0


def _eval(node, depth: int = 0):
    """Evaluate a whitelisted arithmetic AST: numbers, + - * / // % **, unary +-, and a few
    named functions. Anything else (names, attributes, calls to other things, strings,
    comprehensions, lambdas) is refused before it could run. Every int stays under MAX_BITS
    bits, so each operation is fast; _binary and _function bound what could grow."""
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
        # 1 + 2 - 3 + ... parses as a tree leaning left, one level per term: walk that spine
        # in a loop, so a long flat sum is not mistaken for deep nesting
        spine = []
        while isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            spine.append(node)
            node = node.left
        value = _eval(node, depth + 1)
        for link in reversed(spine):
            value = _binary(link.op, value, _eval(link.right, depth + 1))
        return value
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id in _FUNCTIONS and not node.keywords and 1 <= len(node.args) <= 2):
        return _function(node.func.id, [_eval(a, depth + 1) for a in node.args])
    raise _CalcError(f"{type(node).__name__} is not allowed")


def _binary(op, left, right):
    """``left op right``, refused when the operands would make an int past MAX_BITS bits."""
    if isinstance(op, ast.Pow):
        if abs(right) > 10_000 or (isinstance(right, int) and _bits(left) * abs(right) >
                                    MAX_BITS):
            raise _CalcError("exponent too large")
        if isinstance(left, float) or isinstance(right, float):
            if left < 0 and not float(right).is_integer():
                raise _CalcError("fractional power of a negative number")
    if isinstance(op, ast.Mult) and _bits(left) + _bits(right) > MAX_BITS:
        raise _CalcError("result too large")
    value = _BINARY[type(op)](left, right)
    if _bits(value) > MAX_BITS:
        raise _CalcError("result too large")
    return value


def _function(name: str, args: list):
    """One of the named functions. Floats take constant time; an int argument is bounded, and
    round's ndigits too: ``round(1, -10**9)`` would compute ``10 ** 10**9``."""
    if any(_bits(a) > 1024 for a in args):
        raise _CalcError("argument too large")
    if name == "round" and len(args) == 2:
        if not isinstance(args[1], int):
            raise _CalcError("round's ndigits must be an integer")
        if abs(args[1]) > MAX_NDIGITS:
            raise _CalcError(f"round's ndigits must be between -{MAX_NDIGITS} and {MAX_NDIGITS}")
    value = _FUNCTIONS[name](*args)
    if _bits(value) > MAX_BITS:
        raise _CalcError("result too large")
    return value


def calculator(expression: str) -> str:
    """Exact arithmetic on a string, e.g. ``calculator("482 * 917") == "441994"``.

    Parses with ``ast`` and evaluates only numbers, + - * / // % **, parentheses and
    sqrt/abs/round/log/exp: it never calls ``eval``. Bad or hostile input (names, attribute
    access, huge powers, huge ``round`` digits, nesting deeper than 50, over 500 characters)
    returns a string that starts with "error"; it never raises, and it returns within a second
    on any input: no operand grows past ``MAX_BITS`` bits. A flat chain such as a sum of 250
    terms is not nesting. Taught in book/07b_agents.md, section 2.
    """
    try:
        if not isinstance(expression, str):
            return f"error: expression must be a str, got {type(expression).__name__}"
        if len(expression) > MAX_CHARS:
            return f"error: expression longer than {MAX_CHARS} characters"
        if not expression.strip():
            return "error: empty expression"
        # brackets nest without leaving AST nodes, so count them here; within MAX_CHARS the
        # parser itself is safe (under a millisecond, it refuses 200 nested brackets itself)
        levels = itertools.accumulate((c in "([{") - (c in ")]}") for c in expression)
        if max(levels) > MAX_DEPTH:
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
        if not isinstance(u, str) or u not in _UNIT_SIZE:
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
