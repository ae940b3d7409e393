"""Chapter 7's fine-tuned ``tiny-gpt``: a longer context, greedy decoding, the two training
runs, their checkpoints, and the model as a ``ReActAgent`` policy.

The context is extended from 128 to ``BLOCK`` positions first (``extend_positions``): an
agent's transcript does not fit in 128 tokens. ``train_policy`` fine-tunes on the examples of
``traces.training_examples`` with chapter 5's chat template and ``train.fit``;
``save_policy`` writes ``<run>.safetensors`` and ``<run>.json`` (sha256, settings, the loss
curve); ``load_policy(name)`` loads one back after checking its record and sha256.
Taught in book/07_rag_agents.md and book/07b_agents.md.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import torch

from .. import align
from ..agent import Step
from ..checkpoint import atomic_write, atomic_write_text, this_machine
from ..evaluate import greedy_matches
from ..models import GPT, WEIGHTS_DIR, sha256_file
from ..pretrained import load_pretrained
from ..train import Schedule, fit
from .traces import CHUNKING, TRAIN_SEEDS, _check_str, agent_prompt, training_examples

__all__ = ["RUNS", "BLOCK", "BATCH", "extend_positions", "generate_answer",
           "greedy_starts_with", "greedy_written", "train_policy", "save_policy", "load_policy",
           "ModelPolicy"]

# The two fine-tuning runs, each shipped as weights/<name>.safetensors with a JSON record.
# reader: reading only (three reading examples per training question). agent: reading, tool
# traces and copy drills together (one reading example per question); without the drills it
# learns to choose the calculator but not to copy digits into the call.
RUNS = {
    "ch7-reader": {"tasks": ("read",), "reads": 3, "steps": 6000, "lr": 3e-3},
    "ch7-agent": {"tasks": ("read", "tools", "copy"), "reads": 1, "steps": 6000, "lr": 1e-3},
}
BLOCK = 256                  # context after extend_positions (tiny-gpt was trained on 128)
BATCH = 16


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
