"""Tools described by a JSON schema, safe tools, and a ReAct loop that survives bad calls.

A tool is a function with a name, a description and an input schema (the function-calling
convention: ``{"name", "description", "input_schema"}``). The agent loop asks a policy for the
next step, runs the tool it names in a worker process under a time and a memory limit, and
feeds the result (or the error) back as an observation. Taught in book/07b_agents.md (part 2 of
chapter 7): tools in section 1, the calculator in section 2, the ReAct loop in section 3.
"""

from __future__ import annotations

import ast
import contextlib
import itertools
import json
import math
import multiprocessing
import operator
import os
import pickle
import re
import signal
import sys
import threading
import warnings
import weakref
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
MAX_ACTION_DEPTH = 32  # lists and objects inside an action; deeper is refused
_FINAL = re.compile(r"^Final Answer:\s*(.*)$", re.M | re.S)
_THOUGHT = re.compile(r"^Thought:\s*(.*)$", re.M)


def _nesting(value) -> int:
    """How deeply lists and dicts nest in ``value``, counted level by level (no recursion)."""
    depth, level = 0, [value]
    while level:
        depth += 1
        level = [v for x in level if isinstance(x, list | dict)
                 for v in (x.values() if isinstance(x, dict) else x)]
    return depth - 1


def parse_step(text: str) -> Step:
    """Read a policy's output: ``Thought: ...`` then either ``Action: {"name": ..., "input":
    {...}}`` or ``Final Answer: ...``. A malformed action (bad JSON, or JSON nested deeper than
    ``MAX_ACTION_DEPTH``) becomes a Step whose observation is the parse error (the loop shows
    it to the policy rather than crashing). Taught in book/07b_agents.md, section 3."""
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
        too_deep = _nesting(call) > MAX_ACTION_DEPTH
    except json.JSONDecodeError as exc:
        step.observation = f"error: the action is not valid JSON ({exc.msg})"
        return step
    except RecursionError:  # json.loads recurses once per level of nesting
        too_deep = True
    if too_deep:
        step.observation = f"error: the action is nested too deeply (over {MAX_ACTION_DEPTH})"
        return step
    if not isinstance(call, dict) or not isinstance(call.get("name"), str):
        step.observation = 'error: the action must be {"name": ..., "input": {...}}'
        return step
    step.tool, step.args = call["name"], call.get("input", {})
    return step


# --------------------------------------------------------------------------------------------
# Tool calls in a worker process, under a time and a memory limit
START_TIMEOUT_S = 120  # a "spawn" worker imports course_lib (and torch) before its first call


def _cap_memory(memory_mb: int) -> None:
    """Let this process map at most ``memory_mb`` MiB more than it maps now (RLIMIT_AS, read
    against /proc). Linux enforces it; without /proc (macOS, Windows) nothing is capped."""
    try:
        import resource
        with open("/proc/self/statm") as f:
            limit = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE") + memory_mb * 2**20
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = min([limit] + [x for x in (soft, hard) if x != resource.RLIM_INFINITY])
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (ImportError, OSError, ValueError):
        pass


def _serve(conn, tools: dict, memory_mb: int, agent_end) -> None:
    """The worker: receive (tool name, arguments), send back the observation, until EOF."""
    if agent_end is not None:  # forked: this copy of the agent's end would hide its EOF
        agent_end.close()
    if hasattr(os, "setpgid"):  # a group of its own: a timeout also stops what a call started
        os.setpgid(0, 0)
    if "torch" in sys.modules:  # torch's OpenMP pool did not survive a fork and would hang
        sys.modules["torch"].set_num_threads(1)
    _cap_memory(memory_mb)
    conn.send("ready")
    while True:
        try:
            name, args = conn.recv()
        except EOFError:  # the agent closed its end or exited
            return
        try:
            reply = _run_tool(tools[name], args)
        except BaseException as exc:  # SystemExit and the like are observations too
            reply = f"error: {name} failed: {type(exc).__name__}"
        try:
            conn.send(reply)
        except Exception as exc:  # e.g. a result too large to pickle within the memory limit
            conn.send(f"error: {name}'s result could not be sent back ({type(exc).__name__})")


def _call_in_thread(tool: Tool, args: dict, timeout_s: float) -> str:
    """The fallback for a tool a "spawn" worker cannot unpickle: the loop stops waiting after
    ``timeout_s``, but a thread cannot be stopped, so the call runs on in the background."""
    replies = []

    def work():
        try:
            replies.append(_run_tool(tool, args))
        except BaseException as exc:
            replies.append(f"error: {tool.name} failed: {type(exc).__name__}")

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    thread.join(timeout_s)
    return replies[0] if replies else (f"error: {tool.name} did not finish within {timeout_s:g} "
                                       "s (it runs on in a thread)")


def _picklable(tool: Tool) -> bool:
    try:
        pickle.dumps(tool)
        return True
    except Exception:  # closures and lambdas, or what they hold
        return False


class _Worker:
    """One agent's tool calls in a child process, started at the first call and reused: a call
    past its time, or one that kills the process, stops it; the next call starts a new one."""

    def __init__(self, tools: list[Tool], memory_mb: int, start_method: str):
        self.tools = {t.name: t for t in tools}
        self.memory_mb, self.start_method = memory_mb, start_method
        self.process = self.conn = None
        self.in_threads: set[str] | None = None  # decided at the first call

    def choose_threads(self) -> None:
        """A "spawn" worker gets pickled copies of the tools: the others run in threads."""
        self.in_threads = set() if self.start_method == "fork" else {
            name for name, tool in self.tools.items() if not _picklable(tool)}
        if self.in_threads:
            warnings.warn(f"ReActAgent: tools {sorted(self.in_threads)} cannot be pickled for a "
                          "'spawn' worker; they run in threads, with no memory limit, and a call "
                          "past its time is abandoned, not stopped", RuntimeWarning, stacklevel=4)

    def start(self) -> None:
        tools = {n: t for n, t in self.tools.items() if n not in self.in_threads}
        context = multiprocessing.get_context(self.start_method)
        self.conn, there = context.Pipe()
        agent_end = self.conn if self.start_method == "fork" else None
        self.process = context.Process(target=_serve, args=(there, tools, self.memory_mb,
                                                            agent_end), daemon=True)
        try:
            with warnings.catch_warnings():  # Python 3.12+ warns on fork while threads run;
                warnings.simplefilter("ignore", DeprecationWarning)  # a deadlock times out
                self.process.start()
        except Exception as exc:  # e.g. inside a daemonic process, which may have no children
            warnings.warn(f"ReActAgent: no worker process ({type(exc).__name__}: {exc}); the "
                          "tools run in threads, with no memory limit", RuntimeWarning,
                          stacklevel=4)
            self.in_threads, self.process = set(self.tools), None
        there.close()
        with contextlib.suppress(EOFError, OSError):
            if self.process and self.conn.poll(START_TIMEOUT_S) and self.conn.recv() == "ready":
                return
        self.stop()

    def call(self, tool: Tool, args: dict, timeout_s: float) -> str:
        if self.in_threads is None:
            self.choose_threads()
        if self.process is not None and not self.process.is_alive():
            self.stop()
        if self.process is None and tool.name not in self.in_threads:
            self.start()
        if tool.name in self.in_threads:
            return _call_in_thread(tool, args, timeout_s)
        if self.process is None:
            return f"error: the worker process for {tool.name} did not start"
        try:
            self.conn.send((tool.name, args))
            if self.conn.poll(timeout_s):
                return self.conn.recv()
            reply = f"error: {tool.name} did not finish within {timeout_s:g} s and was stopped"
        except (EOFError, OSError):  # the process died during the call
            self.process.join(1)
            reply = f"error: {tool.name} crashed (exit code {self.process.exitcode})"
        except BaseException:  # interrupted while waiting: the call must not run on
            self.stop()
            raise
        self.stop()
        return reply

    def stop(self) -> None:
        if self.conn is not None:
            self.conn.close()
        if self.process is None:
            self.conn = None
            return
        if hasattr(os, "killpg"):
            with contextlib.suppress(OSError):
                os.killpg(self.process.pid, signal.SIGKILL)
        self.process.kill()
        self.process.join()
        self.process = self.conn = None


@dataclass
class ReActAgent:
    """Thought, action, observation, repeated until a final answer or ``max_steps`` turns.

    ``policy(question, steps, tools) -> str`` is the model: it sees the question, the steps so
    far and the tools' specs, and writes the next "Thought/Action" or "Final Answer". Unknown
    tools, malformed calls, tool errors, results that are not a str, and calls that run past a
    limit come back as observations; the loop never raises on what the policy writes.

    Each tool call runs in a worker process, started at the first call and reused (about 0.04
    ms a call): a call that runs longer than ``tool_timeout_s`` seconds is stopped (the process
    and any it started are killed; the next call starts a new one), and on Linux the worker may
    map at most ``tool_memory_mb`` MiB more than the program had (RLIMIT_AS), so a call that
    asks for more gets a MemoryError. ``start_method="fork"`` (the default where ``os.fork``
    exists: Linux, macOS) runs any tool, closures included; the worker sees the program as it
    was at the first call, and what a tool changes in memory stays there. ``"spawn"`` (the
    default on Windows) sends the worker pickled tools (a script then needs the ``if __name__
    == "__main__":`` guard); a tool that cannot be pickled runs in a thread, which a timeout
    abandons but cannot stop. Only Linux caps memory; macOS and Windows keep the time limit.
    ``close()`` ends the worker; so does garbage collection.
    Taught in book/07b_agents.md, section 3.
    """

    policy: Callable
    tools: list[Tool] = field(default_factory=list)
    max_steps: int = 5
    tool_timeout_s: float = 10.0
    tool_memory_mb: int = 1024
    start_method: str | None = None

    def __post_init__(self):
        if not callable(self.policy):
            raise TypeError(f"ReActAgent: policy must be callable, got {self.policy!r}")
        if not isinstance(self.tools, list | tuple) or not all(
                isinstance(t, Tool) for t in self.tools):
            raise TypeError(f"ReActAgent: tools must be a list of Tool, got {self.tools!r}")
        if not isinstance(self.max_steps, int) or isinstance(self.max_steps, bool) \
                or self.max_steps < 1:
            raise ValueError(f"ReActAgent: max_steps must be an int >= 1, got {self.max_steps!r}")
        timeout = self.tool_timeout_s
        if not isinstance(timeout, int | float) or isinstance(timeout, bool) \
                or not 0 < timeout <= 86_400:
            raise ValueError(f"ReActAgent: tool_timeout_s must be a number of seconds in (0, "
                             f"86400], got {timeout!r}")
        memory = self.tool_memory_mb
        if not isinstance(memory, int) or isinstance(memory, bool) or memory < 1:
            raise ValueError(f"ReActAgent: tool_memory_mb must be an int >= 1, got {memory!r}")
        methods = ("fork", "spawn") if hasattr(os, "fork") else ("spawn",)
        self.start_method = self.start_method or methods[0]
        if self.start_method not in methods:
            raise ValueError(f"ReActAgent: start_method must be one of {methods} or None, got "
                             f"{self.start_method!r}")
        names = [t.name for t in self.tools]
        if len(set(names)) != len(names):
            raise ValueError(f"ReActAgent: tool names must be unique, got {names}")
        self.by_name = {t.name: t for t in self.tools}
        self._worker = _Worker(self.tools, memory, self.start_method)
        weakref.finalize(self, self._worker.stop)  # no worker outlives its agent

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
                steps.append(Step(observation=f"error: the policy failed: {exc}"))
                continue
            step = parse_step(text)
            steps.append(step)
            if step.answer is not None:
                return step.answer, steps
            if step.observation is not None:  # a parse error
                continue
            tool = self.by_name.get(step.tool)
            if tool is None:
                step.observation = (f"error: unknown tool {step.tool!r}; tools are "
                                    f"{sorted(self.by_name)}")
            else:  # checked here, run in the worker under the time and memory limits
                step.observation = tool.validate(step.args) or self._worker.call(
                    tool, step.args, self.tool_timeout_s)
        return None, steps

    def close(self) -> None:
        """End the worker process now (a later tool call starts a new one)."""
        self._worker.stop()


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
