"""Knowledge distillation (Hinton et al. 2015): a small student learns from a large teacher's
softened output distribution as well as from the true next tokens. And chapter 6's organisms:
``pydoc-gpt`` (the teacher, trained by ``python -m course_lib.train --preset pydoc-gpt``) and
its two students, trained here by ``python -m course_lib.distill --student hard|soft``.

Taught in book/06b_inference.md.

    loss = alpha * T^2 * KL(softmax(t / T) || softmax(s / T)) + (1 - alpha) * CE(s, labels)

The soft term is multiplied by ``T^2`` because its gradient with respect to the student's
logits is ``(softmax(s/T) - softmax(t/T)) / T``: without the factor, raising the temperature
would shrink the soft targets' pull by ``1/T^2`` relative to the hard labels.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from ._checks import check_float, check_int, check_tensor
from .models import GPT, WEIGHTS_DIR, GPTConfig, config_dict, sha256_file
from .train import (
    Schedule,
    evaluate,
    fit,
    get_batch,
    load_checkpoint,
    run_with_threads,
    save_run,
    unigram_loss,
)

__all__ = ["STUDENT_CONFIG", "distillation_loss", "load_organism", "train_student"]

TEACHER = "pydoc-gpt"
# one block, d_model 88: about a quarter of the teacher's parameters, a quarter of its depth
STUDENT_CONFIG = GPTConfig(vocab_size=1024, block_size=128, n_layer=1, n_head=4, d_model=88)
STUDENTS = {"hard": {"alpha": 0.0, "temperature": 1.0},
            "soft": {"alpha": 0.5, "temperature": 2.0}}


def _check_number(value, name, low, high, low_open=False, where="distillation_loss"):
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise ValueError(f"{where}: {name} must be a number, got {value!r}")
    if value < low or value > high or (low_open and value == low):
        raise ValueError(f"{where}: {name} must be in {'(' if low_open else '['}{low}, {high}], "
                         f"got {value!r}")


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                      labels: torch.Tensor, temperature: float, alpha: float) -> torch.Tensor:
    """``alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE(student, labels)``, each
    averaged over the positions whose label is not -100. Logits are ``(..., V)``, labels
    ``(...)``. The teacher's logits are treated as constants (detached)."""
    where = "distillation_loss"
    for name, t in (("student_logits", student_logits), ("teacher_logits", teacher_logits)):
        if not isinstance(t, torch.Tensor) or not t.is_floating_point() or t.dim() < 2:
            raise ValueError(f"{where}: {name} must be a floating-point (..., vocab) tensor")
        check_tensor(where, name, t, nonempty=True, finite=True)
    if teacher_logits.shape != student_logits.shape:
        raise ValueError(f"{where}: teacher_logits shape {tuple(teacher_logits.shape)} != "
                         f"student_logits "
                         f"shape {tuple(student_logits.shape)}")
    if not isinstance(labels, torch.Tensor) or labels.dtype not in (torch.int64, torch.int32) \
            or labels.shape != student_logits.shape[:-1]:
        raise ValueError(f"{where}: labels must be integer ids of shape "
                         f"{tuple(student_logits.shape[:-1])}")
    bad = (labels != -100) & ((labels < 0) | (labels >= student_logits.shape[-1]))
    if bad.any():
        raise ValueError(f"{where}: labels must be ids in [0, {student_logits.shape[-1]}) or "
                         f"-100, got {labels[bad][:5].tolist()}")
    _check_number(temperature, "temperature", 0, 1e4, low_open=True)
    _check_number(alpha, "alpha", 0, 1)
    vocab = student_logits.shape[-1]
    s, y = student_logits.reshape(-1, vocab), labels.reshape(-1)
    keep = y != -100
    if not keep.any():
        raise ValueError(f"{where}: labels: every position is -100; nothing to learn from")
    hard = F.cross_entropy(s, y, ignore_index=-100) if alpha < 1 else s.new_zeros(())
    if alpha == 0:
        return hard
    t = teacher_logits.detach().reshape(-1, vocab)[keep]
    log_p_teacher = F.log_softmax(t.float() / temperature, dim=-1)
    log_p_student = F.log_softmax(s[keep] / temperature, dim=-1)
    kl = (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(-1).mean()
    soft = kl * temperature**2
    return alpha * soft + (1 - alpha) * hard


def train_student(student: GPT, teacher: GPT | None, train_tokens: torch.Tensor, *,
                  steps: int, batch_size: int = 16, lr: float = 3e-3, warmup: int = 100,
                  temperature: float = 2.0, alpha: float = 0.5, seed: int = 0,
                  val_tokens: torch.Tensor | None = None, eval_every: int = 100,
                  progress: bool = True):
    """Train ``student`` with ``train.fit`` on random windows (the same batches as the
    teacher's own training for the same seed) under :func:`distillation_loss`. ``alpha=0`` is
    plain next-token training and needs no teacher. Returns fit's History."""
    where = "train_student"
    for name, model in (("student", student), ("teacher", teacher)):
        if model is not None and not (isinstance(model, torch.nn.Module)
                                      and hasattr(model, "config")):
            raise TypeError(f"{where}: {name} must be a course GPT, got {type(model).__name__}")
    if student is None:
        raise TypeError(f"{where}: student must be a course GPT, got None")
    check_tensor(where, "train_tokens", train_tokens, floating=False, dims=(1,))
    if len(train_tokens) <= student.config.block_size:
        raise ValueError(f"{where}: train_tokens needs more than block_size="
                         f"{student.config.block_size} tokens, got {len(train_tokens)}")
    check_int(where, "steps", steps, low=1)
    check_int(where, "batch_size", batch_size, low=1)
    check_int(where, "warmup", warmup, low=0)
    check_int(where, "eval_every", eval_every, low=1)
    check_int(where, "seed", seed, low=0)
    check_float(where, "lr", lr, low=0, low_open=True)
    _check_number(temperature, "temperature", 0, 1e4, low_open=True, where=where)
    _check_number(alpha, "alpha", 0, 1, where=where)
    if alpha > 0 and teacher is None:
        raise ValueError("train_student: alpha > 0 needs a teacher")
    if teacher is not None:
        teacher.eval()
    gen = torch.Generator().manual_seed(seed)
    block = student.config.block_size

    def loss_fn(model, batch):
        x, y = batch
        logits, _ = model(x)
        if alpha == 0:
            return distillation_loss(logits, logits, y, temperature, 0.0)
        with torch.no_grad():
            t_logits, _ = teacher(x)
        return distillation_loss(logits, t_logits, y, temperature, alpha)

    eval_fn = None if val_tokens is None else (lambda m: evaluate(m, val_tokens, max_batches=4))
    return fit(student, lambda: get_batch(train_tokens, batch_size, block, gen), loss_fn,
               schedule=Schedule(lr, steps, warmup), weight_decay=0.1, betas=(0.9, 0.95),
               eval_fn=eval_fn, eval_every=eval_every, progress=progress, desc="distill")


# ------------------------------------------------------------------ the shipped organisms
def load_organism(name: str, weights_dir: str | Path | None = None) -> GPT:
    """Load ``pydoc-gpt`` or a student (``pydoc-student-hard``/``-soft``) after checking its
    sha256; like ``models.load_pretrained``, with ``.tokenizer`` and ``.meta``."""
    from .tokenizer import load_tokenizer

    names = [TEACHER] + [f"pydoc-student-{k}" for k in STUDENTS]
    if not isinstance(name, str):
        raise TypeError(f"load_organism: name must be a str, got {type(name).__name__}")
    if name not in names:
        raise ValueError(f"load_organism: unknown model {name!r}; available: {names}")
    d = WEIGHTS_DIR if weights_dir is None else Path(weights_dir)
    files = {k: d / f"{name}{ext}" for k, ext in
             (("weights", ".safetensors"), ("meta", ".json"), ("tokenizer", ".tokenizer.json"))}
    for kind, path in files.items():
        if not path.exists():
            raise ValueError(f"load_organism: {kind} file {path} is missing")
    meta = json.loads(files["meta"].read_text(encoding="utf-8"))
    if sha256_file(files["weights"]) != meta["sha256"]:
        raise ValueError(f"load_organism: {files['weights']} is corrupted (sha256 mismatch); "
                         f"regenerate it with: {meta['how_made']}")
    model = load_checkpoint(GPT(GPTConfig(**meta["config"])), files["weights"]).eval()
    model.tokenizer = load_tokenizer(files["tokenizer"])
    model.meta = meta
    return model


def organism_tokens(tokenizer) -> tuple[torch.Tensor, torch.Tensor]:
    """The pydoc snapshot's train and validation splits, encoded."""
    from .corpora import pydoc_text

    return (torch.tensor(tokenizer.encode(pydoc_text("train")), dtype=torch.long),
            torch.tensor(tokenizer.encode(pydoc_text("val")), dtype=torch.long))


def run_student(kind: str, out_dir: str | Path | None = None, progress: bool = True,
                steps: int | None = None, teacher_dir: str | Path | None = None) -> dict:
    """Train the ``hard`` or ``soft`` student of ``pydoc-gpt`` with the teacher's steps,
    batch size, learning-rate schedule and seed, and save it like a preset."""
    if kind not in STUDENTS:
        raise ValueError(f"run_student: kind must be one of {sorted(STUDENTS)}, got {kind!r}")
    from .train import get_preset, prepare_data

    preset = get_preset(TEACHER)
    tok, train_ids, val_ids = prepare_data(preset)  # the teacher's tokenizer, retrained
    teacher = None
    if STUDENTS[kind]["alpha"] > 0:
        teacher = load_organism(TEACHER, teacher_dir)
        if teacher.tokenizer.merges != tok.merges:
            raise ValueError("run_student: the teacher's tokenizer differs from the preset's")
    steps = preset.steps if steps is None else steps
    hp = STUDENTS[kind]

    def work():
        torch.manual_seed(preset.seed)
        student = GPT(STUDENT_CONFIG)
        h = train_student(student, teacher, train_ids,
                          steps=steps, batch_size=preset.batch_size, lr=preset.lr,
                          warmup=preset.warmup, seed=preset.seed, val_tokens=val_ids,
                          eval_every=preset.eval_every, progress=progress, **hp)
        return student, h, evaluate(student, val_ids)

    (student, h, val_loss), seconds = run_with_threads(preset.num_threads, work)
    name = f"pydoc-student-{kind}"
    record = {"name": name, "family": "gpt", "config": config_dict(STUDENT_CONFIG),
              "teacher": TEACHER, **hp,
              "teacher_sha256": None if teacher is None else teacher.meta["sha256"],
              "val_loss": val_loss, "val_perplexity": math.exp(val_loss),
              "unigram_val_loss": unigram_loss(train_ids, val_ids, STUDENT_CONFIG.vocab_size),
              "steps": steps, "batch_size": preset.batch_size, "lr": preset.lr,
              "seed": preset.seed, "num_threads": preset.num_threads,
              "train_seconds": round(seconds, 1),
              "history": {"step": list(range(len(h.loss))), "train_loss": h.loss,
                          "val_step": h.eval_steps, "val_loss": h.evals}}
    return save_run(out_dir, name, student, tok, record,
                    f"python -m course_lib.distill --student {kind}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib.distill",
                                     description="Train a student of pydoc-gpt.")
    parser.add_argument("--student", required=True, choices=sorted(STUDENTS))
    parser.add_argument("--out", default=None, help="output folder (default ./weights)")
    parser.add_argument("--teacher-dir", default=None,
                        help=f"where pydoc-gpt is (default {WEIGHTS_DIR})")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    meta = run_student(args.student, args.out, progress=not args.no_progress,
                       teacher_dir=args.teacher_dir)
    print(f"{meta['name']}: {meta['n_params']:,} parameters, val loss {meta['val_loss']:.4f} "
          f"(perplexity {meta['val_perplexity']:.2f}), {meta['train_seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
