"""Chapter 7's fine-tuned ``tiny-gpt``: a reader that answers from retrieved passages and cites
one, and a ReAct policy that calls a calculator and a search tool, or answers without them.

Both learn from generated examples (towns other than the chapter's Veldmoor, and arithmetic
other than the chapter's test questions) with chapter 5's chat template and ``train.fit``.
The context is extended from 128 to ``BLOCK`` positions first (``extend_positions``): an
agent's transcript does not fit in 128 tokens.

``python -m course_lib.policy --out course_lib/weights`` trains the two runs of ``RUNS``
(the reader, about 22 minutes on two cores, and the agent, about 22 on one) and writes
``<run>.safetensors`` and ``<run>.json`` (sha256, settings, the loss curve);
``load_policy(name)`` loads one back after checking its record and sha256.
Taught in book/07_rag_agents.md and book/07b_agents.md.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from pathlib import Path

import torch

from . import align, data
from .agent import Step, Tool
from .checkpoint import atomic_write, atomic_write_text, this_machine
from .evaluate import greedy_matches
from .models import GPT, WEIGHTS_DIR, sha256_file
from .pretrained import load_pretrained
from .rag.chunking import contextual_chunks, sentence_spans
from .train import Schedule, fit

__all__ = ["RUNS", "BLOCK", "CHUNKING", "extend_positions", "read_prompt", "agent_prompt",
           "parse_cited", "generate_answer", "greedy_starts_with", "greedy_written",
           "propositions", "town_passages", "town_pool", "reading_example",
           "retrieved_propositions", "search_tool", "town_trace", "arithmetic_trace",
           "no_tools_example", "copy_drills", "training_examples", "train_policy", "load_policy",
           "ModelPolicy", "main"]

# The two fine-tuning runs, each shipped as weights/<name>.safetensors with a JSON record.
# reader: reading only (three reading examples per training question). agent: reading, tool
# traces and copy drills together (one reading example per question); without the drills it
# learns to choose the calculator but not to copy digits into the call.
RUNS = {
    "ch7-reader": {"tasks": ("read",), "reads": 3, "steps": 6000, "lr": 3e-3},
    "ch7-agent": {"tasks": ("read", "tools", "copy"), "reads": 1, "steps": 6000, "lr": 1e-3},
}
COPY_DRILLS = 18000          # copy_drills in the agent's run
BLOCK = 256                  # context after extend_positions (tiny-gpt was trained on 128)
CHUNKING = (3, 1)            # sentences per chunk and overlap: what chapter 7 chose on dev
CHAPTER_TOWN_SEED = 0        # Veldmoor, the chapter's town: never used for training
TRAIN_SEEDS = range(1, 41)   # the towns the examples come from
EVAL_ARITHMETIC_SEEDS = (3, 6)  # chapter 7's arithmetic test sets (seed = number of digits)
BATCH = 16

THOUGHT_CALC = "Thought: arithmetic; use the calculator."
THOUGHT_SEARCH = "Thought: a fact; search the register."
THOUGHT_READ = "Thought: the observation says."
THOUGHT_GUESS = "Thought: no tools; a guess."


# --------------------------------------------------------------------------------------------
# A longer context for a model with learned positions
@torch.no_grad()
def extend_positions(model: GPT, block_size: int) -> GPT:
    """Give ``model``'s learned position table ``block_size`` rows, in place, by copying it:
    new position ``j`` starts as old position ``j mod old`` (Longformer's initialisation,
    Beltagy et al., 2020). Positions below the old context keep exactly the vectors the model
    was trained with, so a short prompt gives the same output as before, and every step from
    one position to the next looks as it did in pretraining. Fine-tuning then teaches the
    model to tell position ``j`` from ``j + old`` by what the tokens say.
    """
    if not isinstance(model, GPT) or model.pos_emb is None:
        raise TypeError("extend_positions: model must be a GPT with learned positions")
    old = model.pos_emb.weight                                        # (old, C)
    n_old = old.shape[0]
    if not isinstance(block_size, int) or isinstance(block_size, bool) or block_size < n_old:
        raise ValueError(f"extend_positions: block_size must be an int >= {n_old}, "
                         f"got {block_size!r}")
    new = torch.nn.Embedding(block_size, old.shape[1])
    new.weight.copy_(old[torch.arange(block_size) % n_old])
    model.emb.pos_emb = new
    model.emb.block_size = model.config.block_size = block_size
    return model


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
# Decoding
@torch.no_grad()
def generate_answer(model: GPT, instruction: str, max_new_tokens: int = 48) -> str:
    """Greedy decoding of the response to ``instruction`` until ``<|end|>`` (KV cache), at
    most ``max_new_tokens`` tokens and never past the model's context."""
    tok = model.tokenizer
    ids = tok.encode(align.format_chat(instruction))
    if len(ids) >= model.config.block_size:
        raise ValueError(f"generate_answer: the prompt of {len(ids)} tokens exceeds the "
                         f"context of {model.config.block_size}")
    max_new_tokens = min(max_new_tokens, model.config.block_size - len(ids))
    was_training = model.training
    model.eval()
    caches = model.new_kv_caches()
    logits, _ = model(torch.tensor([ids]), kv_caches=caches)
    out = []
    for _ in range(max_new_tokens):
        nxt = int(logits[0, -1].argmax())
        if nxt == ord(align.END):
            break
        out.append(nxt)
        logits, _ = model(torch.tensor([[nxt]]), kv_caches=caches)
    model.train(was_training)
    return tok.decode(out).strip()


@torch.no_grad()
def greedy_starts_with(model: GPT, items: list[tuple[str, str]], batch_size: int = 8
                       ) -> list[bool]:
    """For each ``(instruction, text)``: does greedy decoding begin with ``" " + text``?

    One teacher-forced pass answers it: greedy decoding writes those tokens if and only if
    each is the argmax given the ones before (chapter 5's ``greedy_answers_match``, for a
    prefix of the response rather than all of it).
    """
    return greedy_matches(model, _chat_sequences("greedy_starts_with", model, items), batch_size)


def _chat_sequences(name: str, model: GPT, items: list[tuple[str, str]]) -> list[tuple]:
    """``(prompt + " " + text token ids, prompt length)`` for each ``(instruction, text)``,
    checked to fit the model's context."""
    if not items:
        raise ValueError(f"{name}: items is empty")
    tok = model.tokenizer
    seqs = []
    for instruction, text in items:
        _check_str(name, "text", text)
        prompt = tok.encode(align.format_chat(instruction))
        seqs.append((prompt + tok.encode(" " + text), len(prompt)))
    longest = max(len(ids) for ids, _ in seqs)
    if longest > model.config.block_size:
        raise ValueError(f"{name}: {longest} tokens exceed the context of "
                         f"{model.config.block_size}")
    return seqs


@torch.no_grad()
def greedy_written(model: GPT, items: list[tuple[str, str]], batch_size: int = 8) -> list[str]:
    """For each ``(instruction, text)``: how much of ``" " + text`` greedy decoding writes
    before it first departs from it (the leading space dropped); ``text`` itself when it
    writes all of it.

    The same teacher-forced pass as ``greedy_starts_with``, read token by token: so one pass
    over ``"answer [k]"`` says both whether the answer comes out and whether the citation
    follows it.
    """
    seqs = _chat_sequences("greedy_written", model, items)
    tok = model.tokenizer
    was_training = model.training
    model.eval()
    out = []
    for start in range(0, len(seqs), batch_size):
        chunk = seqs[start: start + batch_size]
        x = torch.zeros(len(chunk), max(len(ids) for ids, _ in chunk) - 1, dtype=torch.long)
        for i, (ids, _) in enumerate(chunk):
            x[i, : len(ids) - 1] = torch.tensor(ids[:-1])
        pred = model(x)[0].argmax(dim=-1)                                # (B, T)
        for i, (ids, n_prompt) in enumerate(chunk):
            want = torch.tensor(ids[n_prompt:])
            same = (pred[i, n_prompt - 1: len(ids) - 1] == want).long()
            n = int(same.cumprod(0).sum())                    # tokens written before a miss
            out.append(tok.decode(ids[n_prompt: n_prompt + n]).removeprefix(" "))
    model.train(was_training)
    return out


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


# --------------------------------------------------------------------------------------------
# Training, saving, loading
def train_policy(name: str = "ch7-reader", steps: int | None = None, seed: int = 0,
                 progress: bool = False, warmup: int | None = None, device: str = "cpu"):
    """Fine-tune the shipped ``tiny-gpt`` (positions extended to ``BLOCK``) as the run
    ``RUNS[name]`` says: AdamW, warm-up over ``warmup`` steps (default a tenth of the run's),
    then a cosine decay. Each batch is 16 examples of similar length (a random run of the
    examples sorted by length), so little of it is padding. ``steps`` overrides the run's
    (the schedule stays the run's while warming up). Returns (model on the CPU, history)."""
    if name not in RUNS:
        raise ValueError(f"train_policy: name must be one of {sorted(RUNS)}, got {name!r}")
    run = RUNS[name]
    steps = run["steps"] if steps is None else steps
    warmup = run["steps"] // 10 if warmup is None else warmup
    model = load_pretrained("tiny-gpt")
    tok = model.tokenizer
    extend_positions(model, BLOCK)
    align.init_chat_tokens(model)
    model.requires_grad_(True)
    model.to(device)
    encoded = [align.encode_chat(tok, e["instruction"], e["response"])
               for e in training_examples(seed, run["tasks"], run["reads"])]
    encoded = [e for e in encoded if len(e[0]) <= BLOCK]   # drop the few that do not fit
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i][0]))
    rng = random.Random(seed)
    torch.manual_seed(seed)

    def next_batch():
        start = rng.randrange(len(order) - BATCH + 1)
        x, y = align.pad_batch([encoded[i] for i in order[start:start + BATCH]])
        return x.to(device), y.to(device)

    def loss_fn(m, batch):
        x, y = batch
        return align.sft_loss(m(x)[0], y)

    history = fit(model, next_batch, loss_fn,
                  schedule=Schedule(run["lr"], steps, warmup),
                  weight_decay=0.0, progress=progress, desc="ch7 policy")
    model.cpu().eval()
    return model, history


def save_policy(model: GPT, history, name: str, out_dir: str | Path, seconds: float,
                device: str = "cpu") -> dict:
    """Write ``<name>.safetensors`` and its record (sha256, settings, loss curve), each
    atomically."""
    from safetensors.torch import save_file

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    weights = out_dir / f"{name}.safetensors"
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    atomic_write(weights, lambda tmp: save_file(state, str(tmp)))
    run = RUNS[name]
    record = {"name": name, "base": "tiny-gpt", "block_size": BLOCK, "chunking": CHUNKING,
              "tasks": run["tasks"], "reads": run["reads"], "lr": run["lr"],
              "train_seeds": [TRAIN_SEEDS.start, TRAIN_SEEDS.stop], "steps": len(history.loss),
              "batch": BATCH, **this_machine(), "device": device,
              "train_seconds": round(seconds, 1), "loss": history.loss,
              "sha256": sha256_file(weights),
              "how_made": f"python -m course_lib.policy --run {name} --out {out_dir}"}
    meta = out_dir / f"{name}.json"
    atomic_write_text(meta, json.dumps(record, indent=1) + "\n")
    return record


def load_policy(name: str = "ch7-reader", weights_dir: str | Path | None = None) -> GPT:
    """A shipped run of ``RUNS``, after checking its record and sha256."""
    from safetensors.torch import load_file

    if name not in RUNS:
        raise ValueError(f"load_policy: name must be one of {sorted(RUNS)}, got {name!r}")
    d = WEIGHTS_DIR if weights_dir is None else Path(weights_dir)
    weights, meta = d / f"{name}.safetensors", d / f"{name}.json"
    regen = f"regenerate with: python -m course_lib.policy --run {name} --out course_lib/weights"
    if not weights.exists() or not meta.exists():
        raise ValueError(f"load_policy: {weights.name} or {meta.name} is missing; {regen}")
    try:
        record = json.loads(meta.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"load_policy: {meta} is not valid JSON ({err.msg}); {regen}") from None
    if not isinstance(record, dict) or record.get("name") != name \
            or record.get("block_size") != BLOCK:
        raise ValueError(f"load_policy: {meta} is not a {name} record; {regen}")
    if sha256_file(weights) != record.get("sha256"):
        raise ValueError(f"load_policy: {weights} does not match its recorded sha256; {regen}")
    model = load_pretrained("tiny-gpt")
    extend_positions(model, BLOCK)
    state = load_file(str(weights))
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    if want != got:
        raise ValueError(f"load_policy: {weights} does not hold tiny-gpt's tensors at "
                         f"block_size {BLOCK}; {regen}")
    model.load_state_dict(state)
    model.eval()
    return model


class ModelPolicy:
    """The fine-tuned model as a ``ReActAgent`` policy: it sees the names of the tools it is
    given (none: it must answer from memory), the question and the steps so far."""

    def __init__(self, model: GPT, max_new_tokens: int = 128):
        self.model, self.max_new_tokens = model, max_new_tokens

    def __call__(self, question: str, steps: list[Step], specs: list[dict]) -> str:
        prompt = agent_prompt(question, [s["name"] for s in specs], steps)
        return generate_answer(self.model, prompt, self.max_new_tokens)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib.policy",
                                     description="Fine-tune chapter 7's reader and agent.")
    parser.add_argument("--run", choices=sorted(RUNS), nargs="*", help="default: both")
    parser.add_argument("--out", default="weights", help="output folder (default ./weights)")
    parser.add_argument("--steps", type=int, help="default: the run's")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    args = parser.parse_args(argv)
    if args.steps is not None and args.steps < 1:
        parser.error("--steps must be >= 1")
    if args.threads < 1:
        parser.error("--threads must be >= 1")
    torch.set_num_threads(args.threads)
    for name in args.run or sorted(RUNS):
        start = time.perf_counter()
        model, history = train_policy(name, args.steps, progress=True, device=args.device)
        record = save_policy(model, history, name, args.out, time.perf_counter() - start,
                             args.device)
        print(f"{name}: final loss {sum(record['loss'][-20:]) / 20:.4f}; "
              f"sha256 {record['sha256']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
