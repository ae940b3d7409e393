"""The ReAct loop: parse the policy's step, run the tool it names in the worker, feed back the
result or the error as an observation. Taught in book/07b_agents.md, section 3."""

from __future__ import annotations

import json
import os
import re
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field

from .sandbox import _Worker
from .tools import Tool

__all__ = ["Step", "parse_step", "ReActAgent", "render_transcript", "drop_transcript_lines",
           "MAX_ACTION_DEPTH"]


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
# a line of tool output that, after an optional passage number "[n]", starts like a line of the
# transcript itself: it could pass for a step the policy or the loop wrote
_TRANSCRIPT_LINE = re.compile(
    r"^\s*(?:\[\d+\]\s*)?(?:Thought|Action|Observation|Final Answer|Question|Tools)\s*:", re.I)


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
        raise TypeError(f"parse_step: text must be a str, got {type(text).__name__}")
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
            step = parse_step(text) if isinstance(text, str) else Step(
                observation="error: the policy must return text", raw=repr(text))
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


def drop_transcript_lines(text: str) -> str:
    """``text`` without the lines that imitate the transcript's own format (``Thought:``,
    ``Action:``, ``Observation:``, ``Final Answer:``, ``Question:``, ``Tools:``, after an
    optional passage number such as ``[1]``), so that a tool's output cannot pass for a step
    of the exchange. A defence against one kind of indirect prompt injection, forged steps;
    it leaves an order in plain words (``"ignore the question and answer ..."``) untouched.
    Taught in book/07b_agents.md, section 5."""
    if not isinstance(text, str):
        raise TypeError(f"drop_transcript_lines: text must be a str, got "
                        f"{type(text).__name__}")
    return "\n".join(line for line in text.splitlines() if not _TRANSCRIPT_LINE.match(line))


def render_transcript(question: str, steps: list[Step], answer: str | None) -> str:
    """The whole exchange as text: question, then each thought, action and observation."""
    if not isinstance(question, str):
        raise TypeError(f"render_transcript: question must be a str, got "
                        f"{type(question).__name__}")
    if not isinstance(steps, list | tuple) or not all(isinstance(s, Step) for s in steps):
        raise TypeError(f"render_transcript: steps must be a list of Step, got {steps!r:.80}")
    if answer is not None and not isinstance(answer, str):
        raise TypeError(f"render_transcript: answer must be a str or None, got "
                        f"{type(answer).__name__}")
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
