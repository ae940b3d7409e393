"""Chapter 5's fine-tuning runs: full fine-tuning, LoRA (a rank sweep, loss on the response
only or on everything, two tenants), QLoRA and prompt tuning of ``tiny-gpt`` on the
instruction tasks, all through ``train.fit``.

``python -m course_lib.finetune --out course_lib/weights`` trains every run (about 10 minutes
of one CPU core; ``--jobs 6`` trains six at once) and writes ``ch5-finetune.safetensors``
(only what each run trained: the full model for full fine-tuning, the adapters or the soft
prompt otherwise) and
``ch5-finetune.json`` (its sha256, the settings and the held-out accuracies).
``load_runs()`` loads them back, after checking the sha256. Taught in book/05_finetuning.md.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import torch

from . import align, data, peft
from .checkpoint import this_machine
from .evaluate import greedy_answers_match
from .models import WEIGHTS_DIR, load_pretrained, sha256_file
from .quant import quantize_model
from .train import Schedule, fit

NAME = "ch5-finetune"
BATCH = 16
N_TRAIN, N_TEST = 5000, 300
# How many steps of a shipped run's loss curve a rerun elsewhere (another CPU, kernel set or
# thread count) must follow within checkpoint.EARLY_RTOL. Later, the paths drift apart: with
# generic kernels a LoRA run at lr 0.005 is 1.2e-5 (relative) off its record by step 46, and
# 7e-7 at most over the first 25 steps (bench/portability.json).
REPLAY_STEPS = 20
ATTENTION = ("q_proj", "k_proj", "v_proj", "out_proj")
PROMPT_INIT = "Answer the question about the story in one word."
TENANTS = {"who-what": ("name", "animal", "object"), "where-how": ("colour", "place", "mood")}

# name -> how it is built and trained. lr: peak learning rate (warm-up 10%, cosine to 10%).
RUNS: dict[str, dict] = {
    "full": {"method": "full", "lr": 1e-3, "steps": 200},
    **{f"lora_r{r}": {"method": "lora", "r": r, "lr": 5e-3, "steps": 200} for r in (1, 4, 16)},
    "lora_r4_all_tokens": {"method": "lora", "r": 4, "lr": 5e-3, "steps": 200,
                           "response_only": False},
    "qlora_r4": {"method": "qlora", "r": 4, "lr": 5e-3, "steps": 200},
    **{f"prompt_k{k}": {"method": "prompt", "k": k, "lr": 3e-2, "steps": 200} for k in (1, 8, 32)},
    **{f"tenant_{t}": {"method": "lora", "r": 4, "lr": 5e-3, "steps": 100, "kinds": kinds}
       for t, kinds in TENANTS.items()},
}


def build(base: torch.nn.Module, run: dict) -> torch.nn.Module:
    """A fresh copy of ``base`` set up for ``run``: only what the method trains is trainable."""
    model = copy.deepcopy(base)
    align.init_chat_tokens(model)
    method = run["method"]
    if method == "full":
        model.requires_grad_(True)
        return model
    if method == "qlora":  # every block Linear to NF4 + double quantization; lm_head stays fp32
        quantize_model(model, "nf4", double_quant=True, skip=("lm_head",))
    if method in ("lora", "qlora"):
        return peft.apply_lora(model, run["r"], alpha=2 * run["r"],
                               targets=run.get("targets", ATTENTION))
    if method == "prompt":
        return peft.PromptTuning(model, run["k"], init_ids=base.tokenizer.encode(PROMPT_INIT))
    raise ValueError(f"build: unknown method {method!r}")


def sft_loss_fn(model, batch) -> torch.Tensor:
    """``fit``'s loss: the model's logits scored by ``align.sft_loss`` (masked targets)."""
    x, y = batch
    logits, _ = model(x)
    return align.sft_loss(logits, y)


def train_sft(model, tokenizer, examples: list[dict], *, steps: int, lr: float,
              response_only: bool = True, seed: int = 0, progress: bool = False):
    """Fine-tune ``model`` on chat-formatted ``examples`` with ``train.fit``: AdamW, no weight
    decay, batches of ``BATCH`` examples drawn with a fixed seed."""
    rng = random.Random(seed)

    def next_batch():
        return align.sft_batch(tokenizer, rng.sample(examples, BATCH), response_only)

    return fit(model, next_batch, sft_loss_fn, schedule=Schedule(lr, steps, max(1, steps // 10)),
               weight_decay=0.0, progress=progress, desc="sft")


def trained_state(model: torch.nn.Module, run: dict) -> dict[str, torch.Tensor]:
    """What a run trained, and so what it ships."""
    if run["method"] == "full":
        return {k: v.detach().clone() for k, v in model.state_dict().items()}
    if run["method"] == "prompt":
        return {"prompt": model.prompt.detach().clone()}
    return peft.lora_state(model)


def restore(base: torch.nn.Module, run: dict, state: dict[str, torch.Tensor]):
    """The fine-tuned model from the base and what the run shipped."""
    model = build(base, run)
    if run["method"] == "full":
        model.load_state_dict(state)
    elif run["method"] == "prompt":
        with torch.no_grad():
            model.prompt.copy_(state["prompt"])
    else:
        peft.load_lora_state(model, state)
    model.eval()
    return model


def held_out(kinds=data.INSTRUCTION_KINDS) -> dict[str, list[dict]]:
    return {split: data.instruction_examples(N_TEST, split, kinds=kinds)
            for split in ("test", "test_phrasing")}


def accuracy(model, tokenizer, examples: list[dict]) -> float:
    return sum(greedy_answers_match(model, tokenizer, examples)) / len(examples)


def train_run(name: str, progress: bool = False) -> tuple[dict, dict]:
    """Train one run from the shipped base; return (what it trained, its record entry)."""
    torch.set_num_threads(1)
    run = RUNS[name]
    base = load_pretrained("tiny-gpt")
    tok = base.tokenizer
    torch.manual_seed(0)
    model = build(base, run)
    kinds = run.get("kinds", data.INSTRUCTION_KINDS)
    examples = data.instruction_examples(N_TRAIN, "train", kinds=kinds)
    start = time.perf_counter()
    history = train_sft(model, tok, examples, steps=run["steps"], lr=run["lr"],
                        response_only=run.get("response_only", True), progress=progress)
    seconds = time.perf_counter() - start
    model.eval()
    acc = {split: accuracy(model, tok, ex) for split, ex in held_out().items()}
    entry = {**{k: list(v) if isinstance(v, tuple) else v for k, v in run.items()},
             "train_seconds": round(seconds, 1), "final_loss": sum(history.loss[-10:]) / 10,
             "loss": history.loss, "accuracy": acc}
    if progress:
        print(f"{name}: {acc} in {seconds:.0f} s", file=sys.stderr)
    return trained_state(model, run), entry


def run_all(out_dir: str | Path, names: list[str] | None = None, jobs: int = 1,
            progress: bool = True) -> dict:
    """Train the runs (all by default; ``jobs`` processes in parallel, one thread each, which
    gives the same weights as one process) and write the safetensors file and its record."""
    from safetensors.torch import save_file

    names = names or list(RUNS)
    if jobs > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(jobs) as pool:
            results = pool.map(train_run, names, chunksize=1)
    else:
        results = [train_run(name, progress) for name in names]
    record = {"name": NAME, "base": "tiny-gpt", "batch": BATCH, "n_train": N_TRAIN,
              "n_test": N_TEST, **this_machine(), "runs": {},
              "how_made": f"python -m course_lib.finetune --out {out_dir}"}
    tensors: dict[str, torch.Tensor] = {}
    for name, (state, entry) in zip(names, results):
        for key, value in state.items():
            tensors[f"{name}/{key}"] = value.contiguous()
        record["runs"][name] = entry
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    weights = out_dir / f"{NAME}.safetensors"
    with tempfile.NamedTemporaryFile(dir=out_dir, delete=False, suffix=".tmp") as f:
        tmp = f.name
    save_file(tensors, tmp)
    os.chmod(tmp, 0o644)  # a temporary file is private; the checkpoint is not
    os.replace(tmp, weights)
    record["sha256"] = sha256_file(weights)
    meta = out_dir / f"{NAME}.json"
    tmp = meta.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, meta)
    return record


def load_runs(weights_dir: str | Path | None = None) -> tuple[dict, dict]:
    """(record, {run name: {tensor name: tensor}}) of the shipped runs, sha256 checked."""
    from safetensors.torch import load_file

    d = WEIGHTS_DIR if weights_dir is None else Path(weights_dir)
    weights, meta = d / f"{NAME}.safetensors", d / f"{NAME}.json"
    regen = "regenerate with: python -m course_lib.finetune --out course_lib/weights"
    if not weights.exists() or not meta.exists():
        raise ValueError(f"load_runs: {weights.name} or {meta.name} is missing; {regen}")
    record = json.loads(meta.read_text(encoding="utf-8"))
    if sha256_file(weights) != record["sha256"]:
        raise ValueError(f"load_runs: {weights} does not match its recorded sha256; {regen}")
    states: dict[str, dict] = {}
    for key, value in load_file(str(weights)).items():
        run, _, tensor = key.partition("/")
        states.setdefault(run, {})[tensor] = value
    return record, states


# ------------------------------------------------------------ the chapter's plumbing
class Runs:
    """The shipped runs over one base, as chapter 5 uses them: each fine-tuned model (built
    once), its per-question hits on the held-out set, and paired comparisons of two runs.

    >>> runs = Runs(load_pretrained("tiny-gpt"))      # doctest: +SKIP
    >>> runs.checked_accuracy("lora_r4")["test"]      # doctest: +SKIP
    """

    def __init__(self, base: torch.nn.Module, weights_dir: str | Path | None = None):
        if not isinstance(base, torch.nn.Module) or not hasattr(base, "tokenizer"):
            raise TypeError(f"Runs: base must be a course model with a tokenizer, got "
                            f"{type(base).__name__}")
        self.base, self.tok = base, base.tokenizer
        self.record, self.states = load_runs(weights_dir)
        self.tests = held_out()      # 300 held-out examples, and 300 in a new phrasing
        self.hits: dict[str, list[bool]] = {}   # run -> did its greedy answer match, per question
        self._models: dict[str, torch.nn.Module] = {}

    def _name(self, where: str, name) -> str:
        if not isinstance(name, str) or name not in RUNS:
            raise ValueError(f"Runs.{where}: name must be one of {sorted(RUNS)}, got {name!r}")
        return name

    def model(self, name: str) -> torch.nn.Module:
        """The fine-tuned model of a shipped run (built from the base once, then cached)."""
        name = self._name("model", name)
        if name not in self._models:
            self._models[name] = restore(self.base, RUNS[name], self.states[name])
        return self._models[name]

    def checked_accuracy(self, name: str) -> dict[str, float]:
        """Held-out exact match of a run, measured here (its hits kept in ``self.hits``) and
        held to its record within one question; the new-phrasing accuracy is the record's."""
        name = self._name("checked_accuracy", name)
        self.hits[name] = greedy_answers_match(self.model(name), self.tok, self.tests["test"])
        got = sum(self.hits[name]) / len(self.hits[name])
        recorded = self.record["runs"][name]["accuracy"]
        if abs(got - recorded["test"]) > 1 / len(self.hits[name]):
            raise RuntimeError(f"Runs.checked_accuracy: {name} measured {got:.4f} here but "
                               f"{recorded['test']:.4f} in its record")
        return {"test": got, "test_phrasing": recorded["test_phrasing"]}

    def paired(self, a: str, b: str) -> dict[str, float]:
        """Run ``a``'s held-out accuracy minus run ``b``'s, in points, on the same questions:
        the difference, its 95% paired-bootstrap interval and McNemar's p-value. Both runs
        must have been measured by ``checked_accuracy`` first."""
        from .evaluate import mcnemar, paired_bootstrap

        for arg, name in (("a", a), ("b", b)):
            if self._name("paired", name) not in self.hits:
                raise ValueError(f"Runs.paired: {arg}={name!r} has no hits yet; call "
                                 f"checked_accuracy({name!r}) first")
        diff, low, high = paired_bootstrap(self.hits[a], self.hits[b])
        return {"diff": 100 * diff, "low": 100 * low, "high": 100 * high,
                "p": mcnemar(self.hits[a], self.hits[b])}


def glue_paired(key: str, result: dict) -> None:
    """Glue a ``Runs.paired`` result as ``{key}_diff``, ``_low``, ``_high`` (signed points)
    and ``{key}_p``."""
    from .notebook import glue_value

    if not isinstance(key, str) or not key:
        raise ValueError(f"glue_paired: key must be a non-empty str, got {key!r}")
    if not isinstance(result, dict) or not {"diff", "low", "high", "p"} <= set(result):
        raise ValueError("glue_paired: result must be a dict from Runs.paired")
    for part in ("diff", "low", "high"):
        glue_value(f"{key}_{part}", result[part], "+.1f")
    glue_value(f"{key}_p", result["p"], ".2g")


def step_costs(model: torch.nn.Module, batch, repeats: int = 3) -> dict:
    """What one real AdamW step of fine-tuning ``model`` on ``batch`` costs, measured on a
    copy (``model`` is not changed): ``trainable`` parameters, the profiler's ``peak`` bytes,
    chapter 2's tensor meter (``parts``: weights, counting buffers too, gradients, optimizer,
    activations; and ``tensors``, the sum of the last three), the optimizer state's ``opt``
    bytes, and
    ``s_step``, the fastest of ``repeats`` timed steps (learning rate 0: nothing moves)."""
    from .measure import measure_peak_memory
    from .memory import measure_training_step, optimizer_state_bytes
    from .quant import model_nbytes

    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"step_costs: model must be an nn.Module, got {type(model).__name__}")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"step_costs: repeats must be a positive int, got {repeats!r}")
    if not isinstance(batch, tuple | list) or len(batch) != 2:
        raise ValueError("step_costs: batch must be (inputs, targets), as align.sft_batch gives")
    work = copy.deepcopy(model).train()
    params = [p for p in work.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=0.0)

    def one_step():
        loss = sft_loss_fn(work, batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    _, peak = measure_peak_memory(one_step)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        one_step()
        times.append(time.perf_counter() - start)
    # a second, independent meter: chapter 2's count of the tensors themselves
    parts = measure_training_step(copy.deepcopy(model), *batch)
    parts["weights"] = model_nbytes(model)   # parameters and buffers: NF4 codes are buffers
    return {"trainable": sum(p.numel() for p in params), "peak": peak, "parts": parts,
            "tensors": parts["gradients"] + parts["optimizer"] + parts["activations"],
            "opt": optimizer_state_bytes(opt), "s_step": min(times)}


CHOICE_WORDS = {"name": data.NAMES, "animal": data.ANIMALS, "object": data.OBJECTS,
                "colour": data.COLOURS, "place": data.PLACES}


def choice_items(tokenizer, examples: list[dict], seed: int = 0) -> list[dict]:
    """Four-way multiple-choice items from instruction examples (the kinds with a closed
    vocabulary): the reference answer and three other words of its kind, in a shuffled order,
    as ``evaluate.multiple_choice_accuracy`` takes them."""
    if not isinstance(examples, list) or not all(isinstance(e, dict) for e in examples):
        raise TypeError("choice_items: examples must be a list of instruction dicts")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"choice_items: seed must be an int, got {seed!r}")
    rng = torch.Generator().manual_seed(seed)
    items = []
    for e in examples:
        if e["kind"] not in CHOICE_WORDS:
            continue
        others = [w for w in CHOICE_WORDS[e["kind"]] if w != e["response"]]
        picks = torch.randperm(len(others), generator=rng)[:3].tolist()
        choices = [e["response"]] + [others[i] for i in picks]
        order = torch.randperm(4, generator=rng).tolist()
        items.append({"context_ids": tokenizer.encode(align.format_chat(e["instruction"])),
                      "choices_ids": [tokenizer.encode(" " + choices[i]) for i in order],
                      "answer": order.index(0)})
    return items


def short_answer(model, tokenizer, instruction: str, max_new_tokens: int = 4) -> str:
    """The model's greedy answer to one instruction, up to ``<|end|>``, stripped."""
    if not isinstance(instruction, str):
        raise TypeError(f"short_answer: instruction must be a str, got "
                        f"{type(instruction).__name__}")
    prompt = tokenizer.encode(align.format_chat(instruction))
    out = model.generate(torch.tensor([prompt]), max_new_tokens, temperature=0)
    return tokenizer.decode(out[0, len(prompt):].tolist()).split(align.END)[0].strip()


def ab_judge(judge, tokenizer):
    """A pairwise judge built from a chat model: ``score(question, first, second)`` shows both
    answers in one prompt, asks which is right, and returns the log-probabilities of ``A`` and
    ``B`` as the judge's reply (for ``evaluate.pairwise_judge``)."""
    from .evaluate import choice_logprobs

    a_id, b_id = tokenizer.encode(" A"), tokenizer.encode(" B")

    @torch.no_grad()
    def score(question: str, first: str, second: str) -> tuple[float, float]:
        prompt = (f"{question} Answer A: {first or '-'}. Answer B: {second or '-'}. "
                  "Which is right?")
        ctx = tokenizer.encode(align.format_chat(prompt))
        (a, _), (b, _) = choice_logprobs(judge, ctx, [a_id, b_id])
        return a, b

    return score


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib.finetune",
                                     description="Train chapter 5's fine-tuning runs.")
    parser.add_argument("--out", default="weights", help="output folder (default ./weights)")
    parser.add_argument("--runs", nargs="*", choices=sorted(RUNS), help="default: all")
    parser.add_argument("--jobs", type=int, default=1, help="runs trained in parallel")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error("--jobs must be >= 1")
    record = run_all(args.out, args.runs, args.jobs, progress=not args.no_progress)
    for name, r in record["runs"].items():
        print(f"{name:22s} {r['accuracy']}  {r['train_seconds']} s")
    print(f"sha256 {record['sha256']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
