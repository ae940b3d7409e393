"""Chapter 1 exercises: softmax, the causal mask, top-p sampling, a block's size, scaling."""

from __future__ import annotations

import math

import torch

from course_lib.exercises import Case, Exercise, register
from course_lib.exercises._util import need_int, need_real, need_tensor, randn


def softmax(x: torch.Tensor) -> torch.Tensor:
    """Softmax over the last dimension, safe for large scores: subtract the row maximum."""
    need_tensor("x", x)
    m = x.amax(dim=-1, keepdim=True)
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))   # a row of -inf stays NaN-free
    e = torch.exp(x - m)
    return e / e.sum(dim=-1, keepdim=True)


register(Exercise(
    id="ch1.softmax", title="A softmax that does not overflow", kind="function",
    section="01_transformer.md",
    prompt=("Write softmax(x) over the last dimension of a float tensor. exp(1000) overflows "
            "to inf, so subtract each row's maximum first (the result does not change: the "
            "factor e^-max cancels). Raise ValueError for an empty tensor or one with NaN."),
    hint="e = exp(x - x.amax(dim=-1, keepdim=True)); divide by e.sum(dim=-1, keepdim=True).",
    reference=softmax,
    cases=lambda: [
        Case((torch.tensor([1.0, 2.0, 3.0]),), note="three scores"),
        Case((torch.tensor([0.42, 2.32, 0.96]),), note="the notes' compatibility scores"),
        Case((torch.tensor([1000.0, 1000.0, 999.0]),), note="large scores: exp overflows"),
        Case((torch.tensor([float("-inf"), 0.0, 1.0]),), note="a masked score (-inf)"),
        Case((randn(3, 5, seed=1),), note="a batch of rows: softmax along the last dim"),
        Case((torch.full((2, 4), 7.0),), note="all scores equal"),
    ],
    bad_cases=lambda: [Case((torch.tensor([]),), note="empty"),
                       Case((torch.tensor([1.0, float("nan")]),), note="NaN")],
))


def causal_mask(n: int) -> torch.Tensor:
    """bool[n, n], True where position i may attend to position j (j <= i)."""
    need_int("n", n, low=1)
    return torch.ones(n, n, dtype=torch.bool).tril()


register(Exercise(
    id="ch1.causal_mask", title="The causal mask", kind="function",
    section="01_transformer.md",
    prompt=("Write causal_mask(n) -> a bool tensor of shape (n, n) that is True where query "
            "position i may attend to key position j: itself and everything before it. "
            "Raise ValueError for n < 1 and TypeError for a non-integer n."),
    hint="Each token sees the past and itself: torch.ones(n, n, dtype=torch.bool).tril().",
    reference=causal_mask,
    cases=lambda: [Case((1,), note="n = 1"), Case((2,)), Case((5,))],
    bad_cases=lambda: [Case((0,), note="n = 0"), Case((2.5,), note="fractional n"),
                       Case((-3,), note="negative n")],
))


def top_p_filter(probs: torch.Tensor, p: float) -> torch.Tensor:
    """Keep the fewest most-probable tokens whose total reaches p; renormalise; zero the rest."""
    need_tensor("probs", probs)
    need_real("p", p, 0.0, 1.0)
    order = torch.argsort(probs, dim=-1, descending=True)
    sorted_p = torch.gather(probs, -1, order)
    before = sorted_p.cumsum(dim=-1) - sorted_p         # mass of the tokens ranked above
    keep_sorted = before < p                             # the token that crosses p is kept
    keep = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)
    kept = torch.where(keep, probs, torch.zeros_like(probs))
    return kept / kept.sum(dim=-1, keepdim=True)


register(Exercise(
    id="ch1.top_p", title="Top-p (nucleus) filtering", kind="function",
    section="01_transformer.md",
    prompt=("Write top_p_filter(probs, p): keep the smallest set of the most probable tokens "
            "whose probabilities add up to at least p, set the others to 0, and renormalise so "
            "the kept ones sum to 1. probs is a 1-D (or batched, last dim) distribution. "
            "Raise ValueError for p outside (0, 1]."),
    hint=("Sort descending and take the cumulative sum; keep a token while the mass *before* "
          "it is still below p, so the token that crosses p is kept too."),
    reference=top_p_filter,
    cases=lambda: [
        Case((torch.tensor([0.5, 0.3, 0.2]), 0.6), note="p crossed by the second token"),
        Case((torch.tensor([0.5, 0.3, 0.2]), 0.5), note="p reached exactly by the first"),
        Case((torch.tensor([0.1, 0.6, 0.3]), 0.65), note="unsorted input"),
        Case((torch.tensor([0.1, 0.6, 0.3]), 1.0), note="p = 1 keeps everything"),
        Case((torch.softmax(randn(2, 6, seed=3), -1), 0.8), note="a batch of two"),
    ],
    bad_cases=lambda: [Case((torch.tensor([0.5, 0.5]), 0.0), note="p = 0"),
                       Case((torch.tensor([0.5, 0.5]), 1.5), note="p > 1")],
))


def _block_params(d_model: int = 128, d_ff: int = 512) -> int:
    attention = 4 * (d_model * d_model + d_model)       # q, k, v and output projections
    mlp = (d_model * d_ff + d_ff) + (d_ff * d_model + d_model)
    layernorms = 2 * 2 * d_model                         # two LayerNorms, weight and bias
    return attention + mlp + layernorms


register(Exercise(
    id="ch1.block_params", title="Predict: the parameters of one block", kind="number",
    section="01_transformer.md",
    prompt=("Before you count it: how many parameters has one course_lib.models.Block with "
            "d_model = 128, 4 heads, d_ff = 512, with biases (tiny-gpt's block)?"),
    hint=("Four d x d projections with biases for attention, two Linear layers for the MLP "
          "(d -> d_ff -> d), two LayerNorms with a weight and a bias each. Heads split d_model, "
          "they do not add parameters."),
    reference=_block_params(), tolerance=0.0,
))

register(Exercise(
    id="ch1.nats", title="Predict: the loss of a 1-in-4 guess", kind="number",
    section="01_transformer.md",
    prompt=("A model gives the correct next token probability 1/4 at every position. What is "
            "its cross-entropy loss in nats (natural log)? Within 1%."),
    hint="The loss is -log p(correct token), with the natural logarithm.",
    reference=-math.log(0.25), tolerance=0.01,
))

register(Exercise(
    id="ch1.why_scale", title="Explain: why divide by sqrt(d_k)", kind="choice",
    section="01_transformer.md",
    prompt="Attention divides the scores q·k by sqrt(d_k). Why?",
    choices={
        "a": "So that the attention weights of a row sum to 1.",
        "b": ("The dot product of two random vectors with unit-variance entries has variance "
              "d_k; without the scale, large scores saturate the softmax and its gradients "
              "vanish."),
        "c": "It halves the memory of the score matrix.",
        "d": "Because queries and keys are normalised to length 1.",
    },
    explanations={
        "a": "The softmax already makes each row sum to 1, with or without the scale.",
        "b": "Dividing by sqrt(d_k) brings the scores' variance back to about 1.",
        "c": "The score matrix has the same size either way.",
        "d": "Queries and keys are not normalised; that is why their dot products grow with d_k.",
    },
    hint="Compute the variance of a sum of d_k products of independent unit-variance numbers.",
    reference="b",
))
