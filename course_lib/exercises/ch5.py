"""Chapter 5 exercises: LoRA's count and forward pass, why B starts at zero."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from course_lib.exercises import Case, Exercise, register
from course_lib.exercises._util import need_real, need_tensor, randn

register(Exercise(
    id="ch5.lora_params", title="Predict: LoRA's trainable parameters", kind="number",
    section="05_finetuning.md",
    prompt=("A 512 x 64 weight gets a LoRA adapter of rank 4. How many parameters does the "
            "adapter train?"),
    hint="A is r x d_in and B is d_out x r.",
    reference=4 * (512 + 64), tolerance=0.0,
))


def lora_forward(x, weight, bias, lora_a, lora_b, alpha):
    """y = x W^T + b + (alpha / r) * (x A^T) B^T, with r = A's rows."""
    for name, t in [("x", x), ("weight", weight), ("lora_a", lora_a), ("lora_b", lora_b)]:
        need_tensor(name, t)
    need_real("alpha", alpha, 0.0, float("inf"))
    r = lora_a.shape[0]
    if lora_a.shape[1] != weight.shape[1] or lora_b.shape != (weight.shape[0], r):
        raise ValueError(f"lora_a {tuple(lora_a.shape)} and lora_b {tuple(lora_b.shape)} do "
                         f"not fit weight {tuple(weight.shape)}")
    return F.linear(x, weight, bias) + (alpha / r) * (x @ lora_a.T) @ lora_b.T


register(Exercise(
    id="ch5.lora_forward", title="LoRA's forward pass", kind="function",
    section="05_finetuning.md",
    prompt=("Write lora_forward(x, weight, bias, lora_a, lora_b, alpha): the frozen layer "
            "x W^T + b plus the low-rank update (alpha / r) (x A^T) B^T, where A is (r, d_in), "
            "B is (d_out, r) and r = A.shape[0]. Raise ValueError when A or B do not fit W."),
    hint="The scale is alpha / r, not alpha; A maps d_in to r, B maps r to d_out.",
    reference=lora_forward, atol=1e-5, rtol=1e-5,
    cases=lambda: [
        Case((randn(2, 8, seed=1), randn(4, 8, seed=2), randn(4, seed=3), randn(2, 8, seed=4),
              torch.zeros(4, 2), 16.0), note="B = 0: the layer equals its base"),
        Case((randn(3, 8, seed=5), randn(4, 8, seed=6), randn(4, seed=7), randn(2, 8, seed=8),
              randn(4, 2, seed=9), 16.0), note="rank 2, alpha 16"),
        Case((randn(5, 6, seed=10), randn(3, 6, seed=11), None, randn(1, 6, seed=12),
              randn(3, 1, seed=13), 1.0), note="rank 1, no bias"),
    ],
    bad_cases=lambda: [Case((randn(2, 8), randn(4, 8), None, randn(2, 7), randn(4, 2), 8.0),
                            note="A has the wrong width")],
))


register(Exercise(
    id="ch5.b_zero", title="Explain: why LoRA's B starts at zero", kind="choice",
    section="05_finetuning.md",
    prompt="LoRA initialises A randomly and B to zero. Why?",
    choices={
        "a": "To save memory at the start of training.",
        "b": "So the adapted model starts exactly equal to the pretrained one, and training "
             "moves it away from there.",
        "c": "Because a zero matrix has rank zero, which regularises the adapter forever.",
        "d": "So that A receives no gradient.",
    },
    explanations={
        "a": "A zero matrix takes as much memory as any other.",
        "b": "BA = 0 at step 0, so the first forward pass is the base model's.",
        "c": "B leaves zero after the first step; nothing keeps its rank at zero.",
        "d": "A's gradient is B^T times something: zero at step 0 only, B's is not.",
    },
    hint="What is the product BA at step 0, and what does the first forward pass compute?",
    reference="b",
))
