"""One training loop for every model in the course, evaluation, checkpoints, and the preset
CLI: ``python -m course_lib.train --preset tiny-gpt`` regenerates the model organism.

Taught in book/01_transformer.md; chapters 5 and 6 reuse ``fit`` for fine-tuning (LoRA, prompt
tuning, DPO) and distillation.

``fit(model, batches, loss_fn, *, schedule, ...)`` is the loop. ``batches`` is a zero-argument
callable returning the next batch or an iterable of batches; ``loss_fn(model, batch)`` returns
a scalar tensor. Only parameters with ``requires_grad`` are trained (freeze the rest to
fine-tune); AdamW is built for them unless ``optimizer`` is given. Each step sets the
schedule's learning rate, backpropagates, clips the gradient norm (``max_grad_norm``, None =
off) and steps. It returns a ``History`` (loss and learning rate per step, evaluations)::

    from course_lib.train import Schedule, fit, get_batch
    gen = torch.Generator().manual_seed(0)
    history = fit(
        model,                                              # any nn.Module
        lambda: get_batch(tokens, 16, 128, gen),            # next batch: (x, y)
        lambda m, batch: m(*batch)[1],                      # GPT returns (logits, loss)
        schedule=Schedule(lr=3e-3, steps=600, warmup=50),   # warm-up, cosine to 10%
        weight_decay=0.1, betas=(0.9, 0.95), max_grad_norm=1.0,
        eval_fn=lambda m: evaluate(m, val_tokens), eval_every=100,
        progress=False,                                     # no tqdm bar
    )
    history.loss[-1], history.evals                         # per-step loss, evaluations

Training is deterministic: the same preset, seed, torch build, thread count, CPU model and
CPU kernel set (``torch.backends.cpu.get_cpu_capability()``: AVX512, AVX2, DEFAULT, ...) give
the same weights bit for bit, and records name all of them. Elsewhere the sums round
differently and training amplifies it: the first steps' losses agree to about 1e-7, the
final weights do not (see ``checkpoint.compare_to_record``).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm  # plain text bar: no ipywidgets needed in a notebook

from . import data
from ._checks import check_int, check_tensor
from .checkpoint import (  # noqa: F401  (the run/record helpers are re-exported here)
    EARLY_RTOL,
    EARLY_STEPS,
    FINAL_RTOL,
    compare_to_record,
    cpu_capability,
    load_checkpoint,
    save_checkpoint,
    save_run,
    weight_distance,
)
from .models import GPT, GPTConfig, config_dict
from .tokenizer import BPETokenizer

DEFAULT_OUT = Path("weights")  # relative to the current directory, never the package


# ------------------------------------------------------------------------------- schedule
@dataclass(frozen=True)
class Schedule:
    """Learning rate per step: linear warm-up over ``warmup`` steps to ``lr``, then either
    ``decay="cosine"`` (half a cosine down to ``final_ratio * lr`` at ``steps``) or
    ``decay="constant"``. Call it with a step number: ``schedule(step) -> float``."""

    lr: float
    steps: int
    warmup: int = 0
    decay: str = "cosine"
    final_ratio: float = 0.1

    def __post_init__(self):
        if isinstance(self.lr, bool) or not isinstance(self.lr, int | float) \
                or not math.isfinite(self.lr) or self.lr <= 0:
            raise ValueError(f"Schedule: lr must be a positive finite number, got {self.lr!r}")
        for name in ("steps", "warmup"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"Schedule: {name} must be an int, got {value!r}")
        if self.steps < 1:
            raise ValueError(f"Schedule: steps must be >= 1, got {self.steps}")
        if self.warmup < 0:
            raise ValueError(f"Schedule: warmup must be >= 0, got {self.warmup}")
        if self.decay not in ("cosine", "constant"):
            raise ValueError(f"Schedule: decay must be 'cosine' or 'constant', "
                             f"got {self.decay!r}")
        if not 0.0 <= self.final_ratio <= 1.0:
            raise ValueError(f"Schedule: final_ratio must be in [0, 1], got {self.final_ratio}")

    def __call__(self, step: int) -> float:
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise ValueError(f"Schedule: step must be an int >= 0, got {step!r}")
        if step < self.warmup:
            return self.lr * (step + 1) / self.warmup
        if self.decay == "constant":
            return self.lr
        progress = (step - self.warmup) / max(1, self.steps - self.warmup)
        cosine = 0.5 * (1 + math.cos(math.pi * progress))
        return self.lr * (self.final_ratio + (1 - self.final_ratio) * cosine)


# ----------------------------------------------------------------------------------- loop
@dataclass
class History:
    """What ``fit`` saw: the loss and learning rate of every step, and each evaluation
    (``eval_steps[i]`` is the step after which ``evals[i]`` was measured)."""

    loss: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    eval_steps: list[int] = field(default_factory=list)
    evals: list = field(default_factory=list)


def optimizer_step(opt: torch.optim.Optimizer, model, loss: torch.Tensor, lr: float,
                   max_grad_norm: float | None = 1.0) -> None:
    """One update: set the learning rate, backpropagate, clip the gradient norm of ``model``
    (a module or a list of parameters; None = no clipping), step. ``fit`` calls this."""
    params = list(model.parameters()) if isinstance(model, torch.nn.Module) else list(model)
    for group in opt.param_groups:
        group["lr"] = lr
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if max_grad_norm is not None:
        torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
    opt.step()


def _batch_source(batches) -> Callable[[], object]:
    if callable(batches):
        return batches
    if isinstance(batches, Iterable):
        it = iter(batches)

        def next_batch():
            try:
                return next(it)
            except StopIteration:
                raise ValueError("fit: batches ran out before the schedule's last step "
                                 "(pass a callable, or itertools.cycle(batches))") from None
        return next_batch
    raise TypeError(f"fit: batches must be a callable or an iterable, got "
                    f"{type(batches).__name__}")


def fit(model: torch.nn.Module, batches, loss_fn: Callable, *, schedule: Schedule,
        optimizer: torch.optim.Optimizer | None = None, weight_decay: float = 0.0,
        betas: tuple[float, float] = (0.9, 0.999), max_grad_norm: float | None = 1.0,
        eval_fn: Callable | None = None, eval_every: int = 0, progress: bool = True,
        desc: str = "train") -> History:
    """Train ``model`` for ``schedule.steps`` steps; see the module docstring.

    ``eval_fn(model)`` (any value) runs after step 0, every ``eval_every`` steps and after the
    last one. The model is in train mode during the loop and in eval mode afterwards. A loss
    that is not a finite scalar stops training with an error naming the step.
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"fit: model must be an nn.Module, got {type(model).__name__}")
    if not isinstance(schedule, Schedule):
        raise TypeError(f"fit: schedule must be a Schedule, got {type(schedule).__name__}")
    if not callable(loss_fn):
        raise TypeError("fit: loss_fn must be callable: loss_fn(model, batch) -> scalar")
    if max_grad_norm is not None and not max_grad_norm > 0:
        raise ValueError(f"fit: max_grad_norm must be > 0 or None, got {max_grad_norm}")
    if isinstance(eval_every, bool) or not isinstance(eval_every, int) or eval_every < 0:
        raise ValueError(f"fit: eval_every must be an int >= 0, got {eval_every!r}")
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("fit: model has no parameter with requires_grad=True")
    if optimizer is None:
        optimizer = torch.optim.AdamW(params, lr=schedule.lr, betas=betas,
                                      weight_decay=weight_decay)
    next_batch = _batch_source(batches)
    history = History()
    last = schedule.steps - 1
    model.train()
    bar = tqdm(range(schedule.steps), disable=not progress, desc=desc, mininterval=1.0)
    for step in bar:
        loss = loss_fn(model, next_batch())
        if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
            raise ValueError(f"fit: loss_fn must return a scalar tensor, got "
                             f"{getattr(loss, 'shape', type(loss).__name__)}")
        value = loss.item()
        if not math.isfinite(value):
            raise FloatingPointError(f"fit: loss is {value} at step {step}")
        lr = schedule(step)
        optimizer_step(optimizer, params, loss, lr, max_grad_norm)
        history.loss.append(value)
        history.lr.append(lr)
        if eval_fn is not None and eval_every and (step % eval_every == 0 or step == last):
            history.eval_steps.append(step)
            history.evals.append(eval_fn(model))
            bar.set_postfix(loss=f"{value:.3f}", eval=str(history.evals[-1])[:8])
    model.eval()
    return history


# ------------------------------------------------------------------------- the GPT preset
@dataclass
class Preset:
    config: GPTConfig
    steps: int
    batch_size: int
    lr: float
    warmup: int = 50
    weight_decay: float = 0.1
    seed: int = 0
    vocab_size: int = 512
    n_stories: int = 4000
    eval_every: int = 100
    num_threads: int = 1  # one thread: no oversubscription, a fixed summation order
    notes: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def schedule(self) -> Schedule:
        return Schedule(self.lr, self.steps, self.warmup)


PRESETS: dict[str, Preset] = {
    "tiny-gpt": Preset(
        config=GPTConfig(vocab_size=512, block_size=128, n_layer=4, n_head=4, d_model=128),
        steps=600, batch_size=16, lr=3e-3, warmup=50,
        notes="the course's model organism: 4 layers, 4 heads, d_model 128, BPE vocab 512",
    ),
    # a seconds-long preset for tests and quick experiments
    "micro-gpt": Preset(
        config=GPTConfig(vocab_size=300, block_size=32, n_layer=2, n_head=2, d_model=32),
        steps=30, batch_size=8, lr=3e-3, warmup=5, n_stories=200, vocab_size=300, eval_every=10,
        notes="a toy preset for tests",
    ),
    # chapter 6: a second organism, on real text (course_lib/corpora), near its capacity
    "pydoc-gpt": Preset(
        config=GPTConfig(vocab_size=1024, block_size=128, n_layer=4, n_head=4, d_model=128),
        steps=1500, batch_size=16, lr=3e-3, warmup=100, vocab_size=1024, eval_every=100,
        notes="tiny-gpt's shape on Python's documentation (pydoc_data.topics), BPE vocab 1024",
        extra={"corpus": "pydoc", "prompt": "The \"if\" statement is used"},
    ),
}


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; available: {sorted(PRESETS)}")
    return PRESETS[name]


def lr_at(step: int, preset) -> float:
    """The learning rate of ``preset.schedule`` at ``step`` (kept for older callers)."""
    return Schedule(preset.lr, preset.steps, preset.warmup)(step)


def get_batch(tokens: torch.Tensor, batch_size: int, block_size: int,
              generator: torch.Generator | None = None):
    """Random windows of ``block_size + 1`` tokens: inputs x and next-token targets y."""
    check_tensor("get_batch", "tokens", tokens, floating=False)
    batch_size = check_int("get_batch", "batch_size", batch_size, low=1)
    block_size = check_int("get_batch", "block_size", block_size, low=1)
    if tokens.dim() != 1:
        raise ValueError(f"get_batch: tokens must be 1-D, got shape {tuple(tokens.shape)}")
    if len(tokens) <= block_size:
        raise ValueError(f"get_batch: need more than block_size={block_size} tokens, "
                         f"got {len(tokens)}")
    starts = torch.randint(len(tokens) - block_size, (batch_size,), generator=generator)
    x = torch.stack([tokens[s: s + block_size] for s in starts.tolist()])
    y = torch.stack([tokens[s + 1: s + 1 + block_size] for s in starts.tolist()])
    return x, y


def lm_loss(model: torch.nn.Module, batch) -> torch.Tensor:
    """Next-token cross-entropy of a GPT on a batch ``(x, y)``: a ``loss_fn`` for ``fit``."""
    x, y = batch
    return model(x, y)[1]


@torch.no_grad()
def evaluate(model: GPT, tokens: torch.Tensor, block_size: int | None = None,
             batch_size: int = 32, max_batches: int | None = None) -> float:
    """Mean next-token cross-entropy (nats) over consecutive non-overlapping windows."""
    block_size, n_windows = check_windows("evaluate", model, tokens, block_size)
    batch_size = check_int("evaluate", "batch_size", batch_size, low=1)
    if max_batches is not None:
        max_batches = check_int("evaluate", "max_batches", max_batches, low=1)
        n_windows = min(n_windows, max_batches * batch_size)
    return window_loss(model, tokens, block_size, batch_size, n_windows)


def check_windows(where: str, model, tokens, block_size) -> tuple[int, int]:
    """The checks of ``evaluate`` and ``evaluate.perplexity``: 1-D integer ``tokens``, a
    ``block_size`` in [1, the model's ``config.block_size``] (a model without a ``config``,
    such as ``peft.PromptTuning``, needs an explicit one), at least one whole window.
    Returns (block, n_windows)."""
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"{where}: model must be a torch nn.Module returning (logits, loss), "
                        f"got {type(model).__name__}")
    check_tensor(where, "tokens", tokens, floating=False, dims=(1,))
    limit = getattr(getattr(model, "config", None), "block_size", None)
    if block_size is None and limit is None:
        raise TypeError(f"{where}: block_size is needed for a model without config.block_size")
    block = limit if block_size is None else \
        check_int(where, "block_size", block_size, low=1, high=limit)
    n_windows = (len(tokens) - 1) // block
    if n_windows < 1:
        raise ValueError(f"{where}: tokens holds {len(tokens)} tokens; need more than "
                         f"block_size={block}")
    return block, n_windows


@torch.no_grad()
def window_loss(model, tokens: torch.Tensor, block: int, batch_size: int,
                n_windows: int) -> float:
    """The one evaluation loop: mean loss of ``model(x, y)`` over the first ``n_windows``
    non-overlapping windows of ``block`` tokens, ``batch_size`` windows per forward pass.
    The model is put in eval mode and back. Arguments are checked by the callers."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    try:
        for start in range(0, n_windows, batch_size):
            idx = range(start, min(start + batch_size, n_windows))
            x = torch.stack([tokens[i * block: (i + 1) * block] for i in idx])
            y = torch.stack([tokens[i * block + 1: (i + 1) * block + 1] for i in idx])
            _, loss = model(x, y)
            total += loss.item() * y.numel()
            count += y.numel()
    finally:
        model.train(was_training)
    return total / count


def prepare_data(preset: Preset):
    """Train the BPE tokenizer on the training split and encode both splits."""
    if preset.extra.get("corpus") == "pydoc":  # chapter 6's organism: real text
        from .corpora import pydoc_text

        train_text, val_text = pydoc_text("train"), pydoc_text("val")
        tok = BPETokenizer.train(train_text, preset.vocab_size)
        return (tok, torch.tensor(tok.encode(train_text), dtype=torch.long),
                torch.tensor(tok.encode(val_text), dtype=torch.long))
    train_text = data.corpus_text("train", seed=preset.seed, n_stories=preset.n_stories)
    val_text = data.corpus_text("val", seed=preset.seed, n_stories=preset.n_stories)
    tok = BPETokenizer.train(train_text, preset.vocab_size)
    train_ids = torch.tensor(tok.encode(train_text), dtype=torch.long)
    val_ids = torch.tensor(tok.encode(val_text), dtype=torch.long)
    return tok, train_ids, val_ids


def train(model: GPT, train_tokens: torch.Tensor, preset: Preset,
          val_tokens: torch.Tensor | None = None, progress: bool = True) -> dict:
    """Pretrain a GPT with ``fit``: random windows, AdamW (betas 0.9/0.95), the preset's
    warm-up and cosine schedule, clipping at 1.0. Returns the history as a dict of lists."""
    gen = torch.Generator().manual_seed(preset.seed)
    block_size = model.config.block_size
    eval_fn = None if val_tokens is None else (lambda m: evaluate(m, val_tokens, max_batches=4))
    h = fit(model, lambda: get_batch(train_tokens, preset.batch_size, block_size, gen), lm_loss,
            schedule=preset.schedule, weight_decay=preset.weight_decay, betas=(0.9, 0.95),
            eval_fn=eval_fn, eval_every=preset.eval_every, progress=progress)
    return {"step": list(range(len(h.loss))), "train_loss": h.loss,
            "val_step": h.eval_steps, "val_loss": h.evals}


def unigram_loss(train_tokens: torch.Tensor, val_tokens: torch.Tensor, vocab_size: int) -> float:
    """Cross-entropy of the best context-free model (token frequencies, add-one smoothed)."""
    vocab_size = check_int("unigram_loss", "vocab_size", vocab_size, low=1)
    for name, t in (("train_tokens", train_tokens), ("val_tokens", val_tokens)):
        check_tensor("unigram_loss", name, t, floating=False, dims=(1,))
        if t.numel() == 0:
            raise ValueError(f"unigram_loss: {name} is empty")
        if t.min() < 0 or t.max() >= vocab_size:
            raise ValueError(f"unigram_loss: {name} must lie in [0, vocab_size={vocab_size})")
    counts = torch.bincount(train_tokens, minlength=vocab_size).double() + 1.0
    logp = torch.log(counts / counts.sum())
    return float(-logp[val_tokens].mean())


def run_with_threads(num_threads: int, fn: Callable):
    """``fn()`` with torch limited to ``num_threads`` threads; returns (result, seconds)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(num_threads)
    try:
        t0 = time.perf_counter()
        result = fn()
        return result, time.perf_counter() - t0
    finally:
        torch.set_num_threads(threads)


def run_preset(name: str, out_dir: str | Path | None = None, progress: bool = True) -> dict:
    """Train a preset from scratch and write ``NAME.safetensors``, ``NAME.json`` (config,
    sha256, metrics) and ``NAME.tokenizer.json`` into ``out_dir`` (default ``./weights``)."""
    preset = get_preset(name)

    def work():
        tok, train_ids, val_ids = prepare_data(preset)
        torch.manual_seed(preset.seed)
        model = GPT(preset.config)
        history = train(model, train_ids, preset, val_ids, progress=progress)
        return tok, train_ids, val_ids, model, history, evaluate(model, val_ids)

    (tok, train_ids, val_ids, model, history, val_loss), seconds = \
        run_with_threads(preset.num_threads, work)
    prompt = torch.tensor([tok.encode(preset.extra.get("prompt", "Once upon a time, there was"))])
    sample = tok.decode(model.generate(prompt, 40, temperature=0)[0].tolist())
    record = {
        "name": name, "family": "gpt", "config": config_dict(preset.config),
        "val_loss": val_loss, "val_perplexity": math.exp(val_loss),
        "unigram_val_loss": unigram_loss(train_ids, val_ids, preset.config.vocab_size),
        "train_tokens": len(train_ids), "val_tokens": len(val_ids),
        "steps": preset.steps, "batch_size": preset.batch_size, "lr": preset.lr,
        "seed": preset.seed, "num_threads": preset.num_threads,
        "train_seconds": round(seconds, 1), "greedy_sample": sample, "history": history,
    }
    return save_run(out_dir, name, model, tok, record,
                    f"python -m course_lib.train --preset {name}", indent=2)


def cli(argv, prog: str, description: str, presets, run: Callable, summary: Callable) -> int:
    """The preset command line shared by ``course_lib.train`` and ``course_lib.families``."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--preset", required=True, choices=sorted(presets))
    parser.add_argument("--out", default=None,
                        help=f"output folder (default: ./{DEFAULT_OUT} in the current directory; "
                             "the shipped checkpoints in course_lib/weights are only "
                             "overwritten when named here)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    meta = run(args.preset, args.out, progress=not args.no_progress)
    print(summary(args.preset, meta))
    print(f"sha256 {meta['sha256']}  (cpu capability {meta['cpu_capability']})")
    print(f"written to {Path(args.out or DEFAULT_OUT).resolve()}")
    return 0


def _summary(name: str, meta: dict) -> str:
    return (f"{name}: {meta['n_params']:,} parameters, val loss {meta['val_loss']:.4f} "
            f"(perplexity {meta['val_perplexity']:.2f}; unigram baseline "
            f"{math.exp(meta['unigram_val_loss']):.1f}), {meta['train_seconds']} s\n"
            f"sample: {meta['greedy_sample']!r}")


def main(argv: list[str] | None = None) -> int:
    return cli(argv, "python -m course_lib.train", "Train a course model from a preset.",
               PRESETS, run_preset, _summary)


if __name__ == "__main__":
    sys.exit(main())
