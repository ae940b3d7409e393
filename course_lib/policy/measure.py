"""What chapter 7b measures on its policy: how tool use splits into skills (the right tool, an
exact call, the result copied), where the policy's attention looks when it copies (induction
heads), and how an agent's transcript fills the context step by step.
Taught in book/07b_agents.md, section 4."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import numpy as np
import torch

from course_lib import align
from course_lib.agent import CALCULATOR, ReActAgent, Step, Tool
from course_lib.attention import causal_mask
from course_lib.evaluate import mcnemar
from course_lib.models import GPT

from .model import ModelPolicy, generate_answer
from .traces import agent_prompt, parse_cited, read_prompt

__all__ = ["ToolUse", "scripted_policy", "measure_tool_use", "attention_maps",
           "induction_scores", "context_segments", "CONTEXT_PARTS"]

LEARNED_TOOLS, LEARNED_NONE, SCRIPTED = ("learned, with tools", "learned, no tools",
                                         "scripted, with tools")


def scripted_policy(reader: GPT):
    """A policy that copies exactly: a regular expression finds the arithmetic expression (else
    the query is the question), the calculator's result is the answer, and passages are read by
    ``reader`` (part 1's fine-tuned reader). What the loop and tools give a perfect copier."""
    if not isinstance(reader, GPT):
        raise TypeError(f"scripted_policy: reader must be a GPT, got {type(reader).__name__}")

    def scripted(question, steps, specs):
        if not steps:
            expression = re.fullmatch(r"What is ([\d\s+\-*/().]+)\?", question)
            call = ({"name": "calculator", "input": {"expression": expression.group(1)}}
                    if expression else {"name": "search", "input": {"query": question}})
            return f"Action: {json.dumps(call)}"
        if steps[-1].tool == "calculator":
            return f"Final Answer: {steps[-1].observation}"
        passages = steps[-1].observation.splitlines()
        said = generate_answer(reader, read_prompt(
            question, [line.split("] ", 1)[1] for line in passages]))
        return f"Final Answer: {said}"
    return scripted


@dataclass
class ToolUse:
    """The measurement of section 4: per (task, policy) the runs and the accuracy; per
    arithmetic task the skills of the learned policy with tools; on the town task how often
    its query was the question word for word and how often the gold sentence came back."""

    tasks: dict
    runs: dict = field(default_factory=dict)       # (task, policy) -> [(answer, steps)]
    results: dict = field(default_factory=dict)    # (task, policy) -> share right
    right: dict = field(default_factory=dict)      # (task, policy) -> [bool] per question
    skills: dict = field(default_factory=dict)     # arithmetic task -> {skill: share}
    p_tools: dict = field(default_factory=dict)    # task -> McNemar p, with tools vs none
    query_exact: float = float("nan")
    gold_seen: float = float("nan")
    tool_errors: int = 0


def _answer_of(answer) -> str:  # the final answer without its citation
    return parse_cited(answer or "")[0]


def measure_tool_use(model: GPT, reader: GPT, search: Tool, tasks: dict) -> ToolUse:
    """Run the learned policy with the calculator and ``search`` (2 steps), the same weights
    with no tools (1 step), and ``scripted_policy(reader)`` (3 steps) on every question of
    ``tasks`` (name -> questions; arithmetic questions carry an ``"expression"``, town
    questions a ``"gold_prop"``), and count each skill separately. Greedy decoding: the same
    weights give the same runs."""
    if not isinstance(model, GPT) or not isinstance(reader, GPT):
        raise TypeError("measure_tool_use: model and reader must be GPT models")
    if not isinstance(search, Tool):
        raise TypeError(f"measure_tool_use: search must be a Tool, got {type(search).__name__}")
    if not isinstance(tasks, dict) or not tasks or not all(
            isinstance(qs, list) and qs for qs in tasks.values()):
        raise ValueError("measure_tool_use: tasks must map names to non-empty lists of questions")
    bots = {LEARNED_NONE: ReActAgent(ModelPolicy(model), [], max_steps=1),
            LEARNED_TOOLS: ReActAgent(ModelPolicy(model), [CALCULATOR, search], max_steps=2),
            SCRIPTED: ReActAgent(scripted_policy(reader), [CALCULATOR, search], max_steps=3)}
    out = ToolUse(tasks=tasks)
    try:
        for name, qs in tasks.items():
            for mode, bot in bots.items():
                out.runs[name, mode] = [bot.run(q["question"]) for q in qs]
                out.right[name, mode] = [_answer_of(a) == q["answer"]
                                         for q, (a, _) in zip(qs, out.runs[name, mode])]
                out.results[name, mode] = float(np.mean(out.right[name, mode]))
    finally:
        for bot in bots.values():
            bot.close()
    for name, qs in tasks.items():
        runs = out.runs[name, LEARNED_TOOLS]
        if "expression" in qs[0]:
            called = [(q, a, s) for q, (a, s) in zip(qs, runs) if s and s[0].tool == "calculator"
                      and s[0].args == {"expression": q["expression"]}]
            out.skills[name] = {
                "right tool": float(np.mean([bool(s) and s[0].tool == "calculator"
                                             for _, s in runs])),
                "exact call": len(called) / len(qs),
                "result copied (of exact calls)": float(np.mean(
                    [_answer_of(a) == s[0].observation for _, a, s in called])) if called
                else float("nan")}
        elif "gold_prop" in qs[0]:
            out.query_exact = float(np.mean([bool(s) and s[0].tool == "search" and s[0].args
                                             == {"query": q["question"]}
                                             for q, (_, s) in zip(qs, runs)]))
            out.gold_seen = float(np.mean([bool(s) and q["gold_prop"] in (s[0].observation or "")
                                           for q, (_, s) in zip(qs, runs)]))
        # the same questions with and without tools: McNemar's test, paired by question
        out.p_tools[name] = mcnemar(out.right[name, LEARNED_TOOLS], out.right[name, LEARNED_NONE])
    out.tool_errors = sum(s.observation is not None and s.observation.startswith("error")
                          for (_, mode), rs in out.runs.items() if mode == LEARNED_TOOLS
                          for _, steps in rs for s in steps)
    return out


# --------------------------------------------------------------------------------------------
# Where the policy looks when it copies
@torch.no_grad()
def attention_maps(model: GPT, ids: list[int]) -> torch.Tensor:
    """The attention weights of every head of ``model`` on the token ids ``ids``: a tensor
    (layers, heads, T, T) whose [l, h, i] row says where position i looks (causal: j <= i)."""
    if not isinstance(model, GPT):
        raise TypeError(f"attention_maps: model must be a GPT, got {type(model).__name__}")
    if not isinstance(ids, list | tuple) or not ids or not all(
            isinstance(i, int) and 0 <= i < model.config.vocab_size for i in ids):
        raise ValueError("attention_maps: ids must be a non-empty list of token ids")
    if len(ids) > model.config.block_size:
        raise ValueError(f"attention_maps: {len(ids)} ids exceed the context of "
                         f"{model.config.block_size}")
    was_training = model.training
    model.eval()
    x = model.emb(torch.tensor([list(ids)]))
    mask = causal_mask(len(ids))
    maps = []
    for block in model.blocks:
        _, weights = block.attn(block.ln1(x), mask=mask, need_weights=True)   # (1, H, T, T)
        maps.append(weights[0])
        x = block(x, mask=mask)
    model.train(was_training)
    return torch.stack(maps)


def _copy_source(ids: list[int], n_prompt: int) -> int:
    """Where in the prompt the response (without its end token) occurs."""
    copy = ids[n_prompt:-1]
    for k in range(n_prompt - len(copy) + 1):
        if ids[k: k + len(copy)] == copy:
            return k
    raise ValueError("induction_scores: the response is not a copy of a span of the prompt")


def induction_scores(model: GPT, examples: list[tuple[str, str]]) -> torch.Tensor:
    """For ``(instruction, response)`` pairs whose response copies a span of the instruction:
    per layer and head, the mean attention weight that a response position puts on the token
    after its earlier occurrence, the token it must write next. (layers, heads); an induction
    head scores near 1, a head that spreads its attention evenly near 1 / T."""
    if not isinstance(examples, list) or not examples:
        raise ValueError("induction_scores: examples must be a non-empty list of pairs")
    scores = []
    for instruction, response in examples:
        ids, n_prompt = align.encode_chat(model.tokenizer, instruction, response)
        src = _copy_source(ids, n_prompt)
        maps = attention_maps(model, ids)
        # position n_prompt + j - 1 holds the copy's token j - 1 and predicts its token j,
        # which sits at src + j in the prompt
        n = len(ids) - 1 - n_prompt
        rows = torch.arange(n_prompt, n_prompt + n - 1)
        scores.append(maps[:, :, rows, rows - n_prompt + src + 1].mean(-1))
    return torch.stack(scores).mean(0)


# --------------------------------------------------------------------------------------------
# How a transcript fills the context
CONTEXT_PARTS = ("question", "thoughts", "actions", "observations", "answer")
_PREFIXES = {"Tools:": "question", "Question:": "question", "Thought:": "thoughts",
             "Action:": "actions", "Observation:": "observations", "Final Answer:": "answer"}


def _part(line: str, previous: str) -> str:
    """The part a line belongs to: by its prefix; a line without one continues the part
    before it (the second passage of an observation), or is a malformed action."""
    for prefix, part in _PREFIXES.items():
        if line.startswith(prefix):
            return part
    return previous if previous in ("observations", "answer") else "actions"


def context_segments(tokenizer, question: str, tool_names: list[str], steps: list[Step]
                     ) -> list[dict[str, int]]:
    """For each step of a ReAct run, the tokens of what the policy's context holds once it has
    written that step: the prompt ``agent_prompt`` builds from the steps before and the step's
    own text, in the chat template, split into ``CONTEXT_PARTS`` (the template's tokens count
    with the question; thoughts of earlier steps are not kept by ``agent_prompt``). Each line
    counts the growth of the encoding of the text up to its end, so the parts add up to the
    length of the whole sequence exactly."""
    if not callable(getattr(tokenizer, "encode", None)):
        raise TypeError("context_segments: tokenizer must have an encode method")
    if not isinstance(steps, list) or not all(isinstance(s, Step) for s in steps):
        raise TypeError("context_segments: steps must be a list of Step")
    out = []
    for k, step in enumerate(steps):
        prompt = agent_prompt(question, tool_names, steps[:k])
        written = step.raw.strip() or "(nothing)"
        full = align.format_chat(prompt, written)
        counts, pos, done, part = dict.fromkeys(CONTEXT_PARTS, 0), 0, 0, "question"
        for line in prompt.split("\n") + written.split("\n"):
            pos = full.index(line, pos) + len(line)
            n = len(tokenizer.encode(full[:pos]))
            part = _part(line, part)
            counts[part] += n - done
            done = n
        counts["question"] += len(tokenizer.encode(full)) - done   # the end token
        out.append(counts)
    return out
