"""What chapter 7's policy reads and writes, and the examples it learns from.

Prompt formats (``read_prompt``, ``agent_prompt``, ``parse_cited``); a town register cut as
chapter 7 cuts it (``town_passages``, ``propositions``); the policy's search tool; and the
generated training examples: reading examples, tool-use traces, closed-book guesses and copy
drills, from towns other than the chapter's Veldmoor and arithmetic other than its test
questions. Taught in book/07_rag_agents.md (the reader) and book/07b_agents.md (the agent).
"""

from __future__ import annotations

import json
import random
import re

from .. import data
from ..agent import Step, Tool
from ..rag.chunking import contextual_chunks, sentence_spans

__all__ = ["COPY_DRILLS", "CHUNKING", "CHAPTER_TOWN_SEED", "TRAIN_SEEDS",
           "EVAL_ARITHMETIC_SEEDS", "READ_PASSAGES", "read_prompt", "agent_prompt",
           "parse_cited", "propositions", "town_passages", "town_pool", "reading_example",
           "retrieved_propositions", "search_tool", "town_trace", "arithmetic_trace",
           "no_tools_example", "copy_drills", "gold_position_shares", "training_examples"]

COPY_DRILLS = 18000          # copy_drills in the agent's run
CHUNKING = (3, 1)            # sentences per chunk and overlap: what chapter 7 chose on dev
CHAPTER_TOWN_SEED = 0        # Veldmoor, the chapter's town: never used for training
TRAIN_SEEDS = range(1, 41)   # the towns the examples come from
EVAL_ARITHMETIC_SEEDS = (3, 6)  # chapter 7's arithmetic test sets (seed = number of digits)

THOUGHT_CALC = "Thought: arithmetic; use the calculator."
THOUGHT_SEARCH = "Thought: a fact; search the register."
THOUGHT_READ = "Thought: the observation says."
THOUGHT_GUESS = "Thought: no tools; a guess."


# --------------------------------------------------------------------------------------------
# Prompt formats: what the model reads and writes
def _check_str(where: str, name: str, value) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{where}: {name} must be a non-empty str, got {value!r}")


def read_prompt(question: str, passages: list[str]) -> str:
    """The reader's instruction: the passages numbered from 1 (none for closed-book), then
    the question. The reader answers ``"<answer> [<n>]"``, citing passage ``n``."""
    _check_str("read_prompt", "question", question)
    if not isinstance(passages, (list, tuple)) or not all(isinstance(p, str) for p in passages):
        raise TypeError("read_prompt: passages must be a list of str")
    lines = [f"[{n}] {p}" for n, p in enumerate(passages, 1)]
    context = "\n".join(lines) if lines else "none"
    return f"Context:\n{context}\nQuestion: {question}"


def agent_prompt(question: str, tool_names: list[str], steps: list[Step] = ()) -> str:
    """The policy's instruction: the tools it may call (or none), the question, and the
    steps so far as ``Action:``/``Observation:`` lines. The policy writes the next step."""
    _check_str("agent_prompt", "question", question)
    tools = ", ".join(tool_names) if tool_names else "none"
    lines = [f"Tools: {tools}", f"Question: {question}"]
    for s in steps:
        if s.tool is not None:
            lines.append("Action: " + json.dumps({"name": s.tool, "input": s.args}))
        elif s.raw:
            lines.append(s.raw.strip().splitlines()[-1][:200])
        if s.observation is not None:
            lines.append(f"Observation: {s.observation}")
    return "\n".join(lines)


_CITED = re.compile(r"^(.*?)\s*\[(\d+)\]\s*$", re.S)


def parse_cited(text: str) -> tuple[str, int | None]:
    """``"cooper [12]"`` -> ``("cooper", 12)``; an answer without a citation -> (text, None)."""
    if not isinstance(text, str):
        raise TypeError(f"parse_cited: text must be a str, got {type(text).__name__}")
    m = _CITED.match(text.strip())
    return (m.group(1).strip(), int(m.group(2))) if m else (text.strip(), None)


# --------------------------------------------------------------------------------------------
# Generated training examples
def propositions(chunk: str) -> list[str]:
    """A chunk's sentences made to stand alone: the header ("Runa Stadol is a resident of
    Veldmoor.") names the resident, so each sentence that starts with the first name gets the
    full name ("Runa plays the harp." -> "Runa Stadol plays the harp."), and the header, which
    only says who the chunk is about, is dropped. A chunk without such a header is split as
    it is."""
    if not isinstance(chunk, str):
        raise TypeError(f"propositions: chunk must be a str, got {type(chunk).__name__}")
    sents = [chunk[a:b].strip() for a, b in sentence_spans(chunk)]
    m = _HEADER.match(sents[0]) if sents else None
    if not m:
        return sents
    first, full = m.group(1), f"{m.group(1)} {m.group(2)}"
    return [full + s[len(first):] if s.startswith(first + " ") else s for s in sents[1:]]


_HEADER = re.compile(r"^(\S+) (\S+) is a resident of \S+\.$")


def town_passages(seed: int = CHAPTER_TOWN_SEED):
    """A town cut as chapter 7 cuts it: (chunk texts, each after its header; the town's
    questions, each with ``gold_ids``, the chunks that hold its gold sentence, and
    ``gold_prop``, the gold sentence standing alone)."""
    docs = data.town_documents(seed=seed)
    chunks = [c for i, d in enumerate(docs) for c in contextual_chunks(d, *CHUNKING, doc=i)]
    texts = [f"{c.header} {c.text}".strip() for c in chunks]
    questions = data.town_questions(seed=seed)
    for q in questions:
        q["gold_ids"] = [i for i, c in enumerate(chunks) if c.doc == q["doc"]
                         and c.start <= q["start"] and q["end"] <= c.end]
        first = q["person"].split()[0]
        q["gold_prop"] = q["person"] + q["gold"][len(first):]
    return texts, questions


def reading_example(q: dict, pool: list[str], k: int, position: int,
                    rng: random.Random) -> dict:
    """A read example: ``q``'s gold sentence (standing alone) at ``position`` (0-based) among
    ``k`` passages; the others are drawn from ``pool`` (the town's propositions), half of
    them about the same resident, so the name alone does not give the answer away. Returns
    the instruction and the response ``"<answer> [<position + 1>]"``."""
    if not isinstance(k, int) or not 1 <= k:
        raise ValueError(f"reading_example: k must be an int >= 1, got {k!r}")
    if not isinstance(position, int) or not 0 <= position < k:
        raise ValueError(f"reading_example: position must be in [0, {k}), got {position!r}")
    gold = q["gold_prop"]
    others = [p for p in pool if p != gold and q["answer"] not in p]
    same = [p for p in others if p.startswith(q["person"] + " ")]
    chosen = rng.sample(same, min(len(same), (k - 1 + 1) // 2))
    chosen += rng.sample([p for p in others if p not in chosen], k - 1 - len(chosen))
    rng.shuffle(chosen)
    passages = chosen[:position] + [gold] + chosen[position:]
    return {"instruction": read_prompt(q["question"], passages),
            "response": f"{q['answer']} [{position + 1}]"}


def town_pool(texts: list[str]) -> list[str]:
    """Every proposition of a town's chunks, once, in order."""
    return list(dict.fromkeys(p for t in texts for p in propositions(t)))


def retrieved_propositions(ranked: list[int], texts: list[str], n_chunks: int = 2,
                           max_passages: int = 5) -> list[tuple[str, int]]:
    """What the reader is given: the propositions of the ``n_chunks`` best chunks of
    ``ranked``, in rank order, each once, at most ``max_passages``; each with its chunk id."""
    if n_chunks < 1 or max_passages < 1:
        raise ValueError("retrieved_propositions: n_chunks and max_passages must be >= 1")
    out: dict[str, int] = {}
    for i in ranked[:n_chunks]:
        for p in propositions(texts[i]):
            out.setdefault(p, i)
    return list(out.items())[:max_passages]


def search_tool(retriever, texts: list[str], method: str = "bm25", max_passages: int = 2
                ) -> Tool:
    """The policy's search tool: the question's best ``max_passages`` propositions of the
    town register, numbered from 1, as ``retrieved_propositions`` gives them to the reader.
    Two by default: with the question, the call and the answer, a third passage would not
    fit in the policy's ``BLOCK``-token context."""
    if isinstance(max_passages, bool) or not isinstance(max_passages, int) or max_passages < 1:
        raise ValueError(f"search_tool: max_passages must be an int >= 1, got {max_passages!r}")
    if not callable(getattr(retriever, "rank", None)):
        raise TypeError(f"search_tool: retriever must have a rank(query, method) method, got "
                        f"{type(retriever).__name__}")
    if not isinstance(texts, list | tuple) or not all(isinstance(t, str) for t in texts):
        raise TypeError("search_tool: texts must be a list of str")
    if not isinstance(method, str):
        raise TypeError(f"search_tool: method must be a str, got {type(method).__name__}")

    def search(query: str) -> str:
        found = retrieved_propositions(retriever.rank(query, method), texts,
                                       max_passages=max_passages)
        return "\n".join(f"[{n}] {p}" for n, (p, _) in enumerate(found, 1))

    return Tool(name="search", description="Search the town register of Veldmoor for facts "
                "about its residents. Returns numbered passages.",
                input_schema={"type": "object", "properties": {"query": {"type": "string"}},
                              "required": ["query"]},
                fn=search)


def town_trace(q: dict, pool: list[str], rng: random.Random) -> list[dict]:
    """The two steps of a town question with tools: search with the question, then read the
    two to four passages the search returned (the gold among them) and answer with a
    citation."""
    call = {"name": "search", "input": {"query": q["question"]}}
    first = {"instruction": agent_prompt(q["question"], ["calculator", "search"]),
             "response": f"{THOUGHT_SEARCH}\nAction: {json.dumps(call)}"}
    k = rng.randint(2, 4)
    read = reading_example(q, pool, k, rng.randrange(k), rng)
    passages = read["instruction"].split("\n", 1)[1].rsplit("\nQuestion:", 1)[0]
    step = Step(tool="search", args=call["input"], observation=passages)
    second = {"instruction": agent_prompt(q["question"], ["calculator", "search"], [step]),
              "response": f"{THOUGHT_READ}\nFinal Answer: {read['response']}"}
    return [first, second]


def arithmetic_trace(q: dict) -> list[dict]:
    """The two steps of an arithmetic question with tools: call the calculator, then copy
    its observation into the final answer."""
    call = {"name": "calculator", "input": {"expression": q["expression"]}}
    first = {"instruction": agent_prompt(q["question"], ["calculator", "search"]),
             "response": f"{THOUGHT_CALC}\nAction: {json.dumps(call)}"}
    step = Step(tool="calculator", args=call["input"], observation=q["answer"])
    second = {"instruction": agent_prompt(q["question"], ["calculator", "search"], [step]),
              "response": f"{THOUGHT_READ}\nFinal Answer: {q['answer']}"}
    return [first, second]


def no_tools_example(q: dict) -> dict:
    """The question with no tools offered: the response is the true answer, which the model
    can only learn to guess (the arithmetic of small numbers, the commonest facts)."""
    return {"instruction": agent_prompt(q["question"], []),
            "response": f"{THOUGHT_GUESS}\nFinal Answer: {q['answer']}"}


def _held_out_arithmetic() -> set[str]:
    return {q["question"] for d in EVAL_ARITHMETIC_SEEDS
            for q in data.arithmetic_questions(50, digits=d, seed=d)}


def copy_drills(n: int, seed: int = 0) -> list[dict]:
    """``n`` short exercises whose whole response is a copy, a third of each kind: an
    expression out of a question (``"What is 4821 * 9377?"`` -> ``"4821 * 9377"``), a number
    out of an observation that follows a question with other numbers (``"Observation:
    45207117"`` -> ``"Final Answer: 45207117"``), and a question about a training town's
    resident, names and all. Numbers have 1 to 8 digits. Each starts after zero to two
    pieces of town passages, so that the copy sits anywhere in the context. ``tiny-gpt``
    never saw a digit in pretraining and cannot copy a string it has not seen before; these
    teach it to."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"copy_drills: n must be an int >= 0, got {n!r}")
    rng = random.Random(seed)
    texts = [t for s in TRAIN_SEEDS[:4] for t in town_passages(s)[0]]
    town_qs = [q["question"] for s in TRAIN_SEEDS[4:8] for q in town_passages(s)[1]]
    held_out = _held_out_arithmetic()

    def number():
        return str(rng.randrange(10 ** rng.randint(1, 8)))

    out = []
    for _ in range(n):
        a, b, op = number(), number(), rng.choice("+-*")
        while f"What is {a} {op} {b}?" in held_out:                # never a test question
            a, b, op = number(), number(), rng.choice("+-*")
        prefix = "".join(rng.choice(texts) + "\n" for _ in range(rng.randint(0, 2)))
        prefix = prefix[rng.randrange(len(prefix)):] if prefix else ""
        kind = rng.randrange(3)
        if kind == 0:
            out.append({"instruction": f"{prefix}Question: What is {a} {op} {b}?",
                        "response": f"{a} {op} {b}"})
        elif kind == 1:
            c = number()
            out.append({"instruction": f"{prefix}Question: What is {a} {op} {b}?\n"
                                       f"Observation: {c}",
                        "response": f"Final Answer: {c}"})
        else:
            q = rng.choice(town_qs)
            out.append({"instruction": f"{prefix}Question: {q}", "response": q})
    return out


# A reading example has between 1 and 5 passages (uniform), the gold one at a uniformly random
# one of them: so the gold sits at [1] far more often than at [5] (gold_position_shares).
READ_PASSAGES = (1, 5)


def gold_position_shares(passages: tuple[int, int] = READ_PASSAGES) -> list[float]:
    """How often training puts the gold passage at position 1, 2, ...: k passages drawn
    uniformly from ``passages`` (inclusive), then the position uniformly among the k, so
    ``P(j) = mean over k of [j <= k] / k``. Taught in book/07_rag_agents.md (lost in the
    middle)."""
    lo, hi = passages
    if not (isinstance(lo, int) and isinstance(hi, int) and 1 <= lo <= hi):
        raise ValueError(f"gold_position_shares: passages must be ints 1 <= lo <= hi, got "
                         f"{passages!r}")
    ks = range(lo, hi + 1)
    return [sum(1 / k for k in ks if j <= k) / len(ks) for j in range(1, hi + 1)]


def training_examples(seed: int = 0, tasks: tuple[str, ...] = ("read", "tools"),
                      reads: int = 1) -> list[dict]:
    """Every training example, shuffled. ``"read"``: ``reads`` reading examples per question
    (1 to 5 passages, the gold at any position) and closed-book guesses, from the towns
    ``TRAIN_SEEDS``. ``"tools"``: tool
    traces with and without tools, on those towns and on arithmetic of 1 to 6 digits that
    avoids chapter 7's test questions. ``"copy"``: ``COPY_DRILLS`` of ``copy_drills``."""
    unknown = set(tasks) - {"read", "tools", "copy"}
    if not tasks or unknown:
        raise ValueError("training_examples: tasks must be among 'read', 'tools' and 'copy', "
                         f"got {tasks!r}")
    rng = random.Random(seed)
    held_out = _held_out_arithmetic()
    out = []
    for s in TRAIN_SEEDS:
        texts, questions = town_passages(s)
        pool = town_pool(texts)
        for q in questions:
            if "read" in tasks:
                for _ in range(reads):
                    k = rng.randint(*READ_PASSAGES)
                    out.append(reading_example(q, pool, k, rng.randrange(k), rng))
                if rng.random() < 0.3:
                    out.append({"instruction": read_prompt(q["question"], []),
                                "response": q["answer"]})
            if "tools" in tasks:
                out.extend(town_trace(q, pool, rng) if rng.random() < 0.5
                           else [no_tools_example(q)])
    if "tools" in tasks:
        for digits in range(1, 7):
            for q in data.arithmetic_questions(800, digits=digits, seed=1000 + digits):
                if q["question"] not in held_out:
                    out.extend(arithmetic_trace(q) if rng.random() < 0.5
                               else [no_tools_example(q)])
    if "copy" in tasks:
        out.extend(copy_drills(COPY_DRILLS, seed))
    rng.shuffle(out)
    return out
