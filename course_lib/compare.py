"""Comparing two language models on the same held-out text, with the uncertainty of the gap.

Taught in book/06_inference.md and book/06b_inference.md: a perplexity is a mean over
windows of text, so two models scored on the same windows form a paired sample, and the
ratio of their perplexities gets a paired bootstrap interval from ``evaluate``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ._checks import check_int
from .evaluate import paired_bootstrap
from .train import check_windows

__all__ = ["window_losses", "window_accuracies", "ppl_ratio"]


def _windows(where: str, model, tokens: torch.Tensor, block_size: int | None):
    block, n = check_windows(where, model, tokens, block_size)    # train.evaluate's checks
    x = tokens[: n * block].view(n, block)
    y = tokens[1: n * block + 1].view(n, block)
    return x, y


@torch.no_grad()
def _per_token(where, model, tokens, block_size, batch_size, fn):
    x, y = _windows(where, model, tokens, block_size)
    batch_size = check_int(where, "batch_size", batch_size, low=1)
    was_training = model.training
    model.eval()
    out = []
    try:
        for i in range(0, len(x), batch_size):
            logits = model(x[i: i + batch_size])
            logits = logits[0] if isinstance(logits, tuple) else logits
            out.append(fn(logits, y[i: i + batch_size]).double())
    finally:
        model.train(was_training)
    return torch.cat(out)


def window_losses(model, tokens: torch.Tensor, block_size: int | None = None,
                  batch_size: int = 32) -> torch.Tensor:
    """Mean next-token cross-entropy (nats) of each non-overlapping window of ``tokens``:
    float64, shape ``(n_windows,)``. All windows have ``block_size`` targets, so their mean is
    ``train.evaluate``'s loss and ``exp`` of it the perplexity."""
    def fn(logits, y):
        return F.cross_entropy(logits.transpose(1, 2), y, reduction="none").double().mean(dim=1)
    return _per_token("window_losses", model, tokens, block_size, batch_size, fn)


def window_accuracies(model, tokens: torch.Tensor, block_size: int | None = None,
                      batch_size: int = 32) -> torch.Tensor:
    """Share of each window's next tokens that are the model's argmax: float64,
    ``(n_windows,)``."""
    def fn(logits, y):
        return (logits.argmax(-1) == y).double().mean(dim=1)
    return _per_token("window_accuracies", model, tokens, block_size, batch_size, fn)


def ppl_ratio(a_losses, b_losses, n: int = 10_000, seed: int = 0,
              confidence: float = 0.95) -> tuple[float, float, float]:
    """``(ratio, low, high)``: perplexity of model A over model B on the same equal-length
    windows, and a paired bootstrap interval for it.

    ``a_losses[i]`` and ``b_losses[i]`` are the two models' mean losses on window ``i`` (from
    ``window_losses``). The ratio of perplexities is ``exp(mean(a - b))``; the interval is
    ``exp`` of ``evaluate.paired_bootstrap``'s interval for the mean loss difference. A ratio
    whose interval lies below 1 says A is better on text like this; one that contains 1 says
    the two are not distinguishable with this many windows.
    """
    for name, v in (("a_losses", a_losses), ("b_losses", b_losses)):
        if isinstance(v, torch.Tensor) and v.dim() != 1:
            raise ValueError(f"ppl_ratio: {name} must be 1-D (one loss per window), "
                             f"got shape {tuple(v.shape)}")
    mean, low, high = paired_bootstrap(a_losses, b_losses, n=n, seed=seed,
                                       confidence=confidence)
    return math.exp(mean), math.exp(low), math.exp(high)

