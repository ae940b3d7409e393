"""Training loop, evaluation and checkpoints; ``python -m course_lib.train --preset tiny-gpt``
regenerates the shipped model organism.

Taught in book/01_transformer.md. Training is deterministic: the same preset, seed, torch
version and thread count give the same weights bit for bit.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm  # plain text bar: no ipywidgets needed in a notebook

from . import data
from .models import GPT, WEIGHTS_DIR, GPTConfig, config_dict, sha256_file
from .tokenizer import BPETokenizer


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
    num_threads: int = 1  # one thread: the same bits on any machine, no oversubscription
    notes: str = ""
    extra: dict = field(default_factory=dict)


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
}


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; available: {sorted(PRESETS)}")
    return PRESETS[name]


def get_batch(tokens: torch.Tensor, batch_size: int, block_size: int,
              generator: torch.Generator | None = None):
    """Random windows of ``block_size + 1`` tokens: inputs x and next-token targets y."""
    if tokens.dim() != 1:
        raise ValueError(f"get_batch: tokens must be 1-D, got shape {tuple(tokens.shape)}")
    if len(tokens) <= block_size:
        raise ValueError(f"get_batch: need more than block_size={block_size} tokens, "
                         f"got {len(tokens)}")
    starts = torch.randint(len(tokens) - block_size, (batch_size,), generator=generator)
    x = torch.stack([tokens[s: s + block_size] for s in starts.tolist()])
    y = torch.stack([tokens[s + 1: s + 1 + block_size] for s in starts.tolist()])
    return x, y


@torch.no_grad()
def evaluate(model: GPT, tokens: torch.Tensor, block_size: int | None = None,
             batch_size: int = 32, max_batches: int | None = None) -> float:
    """Mean next-token cross-entropy (nats) over consecutive non-overlapping windows."""
    block_size = model.config.block_size if block_size is None else block_size
    n_windows = (len(tokens) - 1) // block_size
    if n_windows < 1:
        raise ValueError(f"evaluate: need more than {block_size} tokens, got {len(tokens)}")
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for b, start in enumerate(range(0, n_windows, batch_size)):
        if max_batches is not None and b >= max_batches:
            break
        idx = range(start, min(start + batch_size, n_windows))
        x = torch.stack([tokens[i * block_size: (i + 1) * block_size] for i in idx])
        y = torch.stack([tokens[i * block_size + 1: (i + 1) * block_size + 1] for i in idx])
        _, loss = model(x, y)
        total += loss.item() * y.numel()
        count += y.numel()
    model.train(was_training)
    return total / count


def lr_at(step: int, preset: Preset) -> float:
    """Linear warm-up, then cosine decay to 10% of the peak."""
    if step < preset.warmup:
        return preset.lr * (step + 1) / preset.warmup
    progress = (step - preset.warmup) / max(1, preset.steps - preset.warmup)
    return preset.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def optimizer_step(opt: torch.optim.Optimizer, model: torch.nn.Module, loss: torch.Tensor,
                   lr: float, max_grad_norm: float = 1.0) -> None:
    """One update: set the learning rate, backpropagate, clip the gradient norm, step."""
    for group in opt.param_groups:
        group["lr"] = lr
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    opt.step()


def prepare_data(preset: Preset):
    """Train the BPE tokenizer on the training split and encode both splits."""
    train_text = data.corpus_text("train", seed=preset.seed, n_stories=preset.n_stories)
    val_text = data.corpus_text("val", seed=preset.seed, n_stories=preset.n_stories)
    tok = BPETokenizer.train(train_text, preset.vocab_size)
    train_ids = torch.tensor(tok.encode(train_text), dtype=torch.long)
    val_ids = torch.tensor(tok.encode(val_text), dtype=torch.long)
    return tok, train_ids, val_ids


def train(model: GPT, train_tokens: torch.Tensor, preset: Preset,
          val_tokens: torch.Tensor | None = None, progress: bool = True) -> dict:
    """AdamW with warm-up and cosine decay, gradient clipping at 1.0. Returns the history."""
    gen = torch.Generator().manual_seed(preset.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=preset.lr, betas=(0.9, 0.95),
                            weight_decay=preset.weight_decay)
    history = {"step": [], "train_loss": [], "val_step": [], "val_loss": []}
    model.train()
    bar = tqdm(range(preset.steps), disable=not progress, desc="train", mininterval=1.0)
    for step in bar:
        x, y = get_batch(train_tokens, preset.batch_size, model.config.block_size, gen)
        _, loss = model(x, y)
        optimizer_step(opt, model, loss, lr_at(step, preset))
        history["step"].append(step)
        history["train_loss"].append(loss.item())
        last = step == preset.steps - 1
        if val_tokens is not None and (step % preset.eval_every == 0 or last):
            history["val_step"].append(step)
            history["val_loss"].append(evaluate(model, val_tokens, max_batches=4))
            bar.set_postfix(loss=f"{loss.item():.3f}", val=f"{history['val_loss'][-1]:.3f}")
    model.eval()
    return history


def save_checkpoint(model: torch.nn.Module, path: str | Path) -> str:
    """Write the state dict as safetensors; return its sha256."""
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path))
    return sha256_file(Path(path))


def load_checkpoint(model: torch.nn.Module, path: str | Path) -> torch.nn.Module:
    from safetensors.torch import load_file

    path = Path(path)
    if not path.exists():
        raise ValueError(f"load_checkpoint: no checkpoint at {path}")
    model.load_state_dict(load_file(str(path)))
    return model


def unigram_loss(train_tokens: torch.Tensor, val_tokens: torch.Tensor, vocab_size: int) -> float:
    """Cross-entropy of the best context-free model (token frequencies, add-one smoothed)."""
    counts = torch.bincount(train_tokens, minlength=vocab_size).double() + 1.0
    logp = torch.log(counts / counts.sum())
    return float(-logp[val_tokens].mean())


def run_preset(name: str, out_dir: str | Path | None = None, progress: bool = True) -> dict:
    """Train a preset from scratch and write ``NAME.safetensors``, ``NAME.json`` (config,
    sha256, metrics) and ``NAME.tokenizer.json`` into ``out_dir``."""
    preset = get_preset(name)
    out_dir = WEIGHTS_DIR if out_dir is None else Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(preset.num_threads)
    try:
        t0 = time.perf_counter()
        tok, train_ids, val_ids = prepare_data(preset)
        torch.manual_seed(preset.seed)
        model = GPT(preset.config)
        history = train(model, train_ids, preset, val_ids, progress=progress)
        val_loss = evaluate(model, val_ids)
        seconds = time.perf_counter() - t0
    finally:
        torch.set_num_threads(threads)
    sha = save_checkpoint(model, out_dir / f"{name}.safetensors")
    tok.save(out_dir / f"{name}.tokenizer.json")
    prompt = torch.tensor([tok.encode("Once upon a time, there was")])
    sample = tok.decode(model.generate(prompt, 40, temperature=0)[0].tolist())
    meta = {
        "name": name, "family": "gpt", "config": config_dict(preset.config), "sha256": sha,
        "n_params": sum(p.numel() for p in model.parameters()),
        "val_loss": val_loss, "val_perplexity": math.exp(val_loss),
        "unigram_val_loss": unigram_loss(train_ids, val_ids, preset.config.vocab_size),
        "train_tokens": len(train_ids), "val_tokens": len(val_ids),
        "steps": preset.steps, "batch_size": preset.batch_size, "lr": preset.lr,
        "seed": preset.seed, "num_threads": preset.num_threads,
        "torch_version": torch.__version__, "train_seconds": round(seconds, 1),
        "greedy_sample": sample,
        "history": history,
        "how_made": f"python -m course_lib.train --preset {name}",
    }
    (out_dir / f"{name}.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return meta


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib.train",
                                     description="Train a course model from a preset.")
    parser.add_argument("--preset", required=True, choices=sorted(PRESETS))
    parser.add_argument("--out", default=None, help=f"output folder (default {WEIGHTS_DIR})")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    meta = run_preset(args.preset, args.out, progress=not args.no_progress)
    print(f"{args.preset}: {meta['n_params']:,} parameters, val loss {meta['val_loss']:.4f} "
          f"(perplexity {meta['val_perplexity']:.2f}; unigram baseline "
          f"{math.exp(meta['unigram_val_loss']):.1f}), {meta['train_seconds']} s")
    print(f"sha256 {meta['sha256']}")
    print(f"sample: {meta['greedy_sample']!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
