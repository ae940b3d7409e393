"""Chapter 3 exercises: absmax int8, π in fp8, fp16's maximum, an NF4 lookup, why bf16."""

from __future__ import annotations

import torch

from course_lib.exercises import Case, Exercise, register
from course_lib.exercises._util import need_int, need_tensor, randn
from course_lib.quant import NF4_LEVELS

# The 16 NF4 levels of QLoRA (Dettmers et al. 2023), as course_lib.quant computes them.
NF4 = torch.tensor(NF4_LEVELS, dtype=torch.float32)


def absmax_rows(x: torch.Tensor, bits: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row symmetric quantization: (q int8, scale (rows, 1)) with x ≈ q * scale."""
    need_tensor("x", x, min_dim=2)
    need_int("bits", bits, low=2)
    if bits > 8:
        raise ValueError(f"bits must be at most 8 for int8 storage, got {bits}")
    qmax = 2 ** (bits - 1) - 1
    scale = x.abs().amax(dim=1, keepdim=True) / qmax
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    q = torch.round(x / safe).clamp(-qmax, qmax).to(torch.int8)
    return q, scale


register(Exercise(
    id="ch3.absmax", title="Absmax quantization, one scale per row", kind="function",
    section="03_quantization.md",
    prompt=("Write absmax_rows(x, bits=8) for a 2-D float tensor: one scale per row, "
            "scale = max|row| / (2**(bits-1) - 1), q = round(x / scale) as torch.int8; return "
            "(q, scale) with scale of shape (rows, 1). An all-zero row gets scale 0 and codes 0. "
            "Raise ValueError for NaN, an empty tensor or bits outside 2..8."),
    hint=("Per row means amax over dim=1 with keepdim=True; the grid is symmetric, so the "
          "largest code is 127 for 8 bits, not 128."),
    reference=absmax_rows, atol=1e-7, rtol=1e-6,
    cases=lambda: [
        Case((torch.tensor([[1.0, -2.0, 0.5]]),), note="one row"),
        Case((torch.tensor([[1.0, -2.0], [100.0, 3.0]]),), note="rows of different size"),
        Case((randn(4, 16, seed=2),)),
        Case((randn(3, 8, seed=4), 4), note="4 bits"),
        Case((torch.tensor([[0.0, 0.0], [1.0, -1.0]]),), note="an all-zero row"),
    ],
    bad_cases=lambda: [Case((torch.tensor([[1.0, float("nan")]]),), note="NaN"),
                       Case((randn(2, 2), 1), note="bits = 1"),
                       Case((torch.zeros(0, 3),), note="empty")],
))

register(Exercise(
    id="ch3.pi_e5m2", title="Predict: π in fp8 E5M2", kind="number",
    section="03_quantization.md",
    prompt=("fp8 E5M2 has 2 mantissa bits. What value does π = 3.14159... round to? "
            "(exactly; round to nearest)"),
    hint="Between 2 and 4 the representable values are 2 x (1 + m/4) for m = 0..3.",
    reference=3.0, tolerance=0.0,
))

register(Exercise(
    id="ch3.fp16_max", title="Predict: the largest finite fp16 number", kind="number",
    section="03_quantization.md",
    prompt="What is the largest finite number fp16 (1 sign, 5 exponent, 10 mantissa bits) holds?",
    hint="The largest exponent that is not reserved for inf/NaN is 15; the mantissa all ones.",
    reference=65504.0, tolerance=0.0,
))


def nf4_codes(block: torch.Tensor) -> torch.Tensor:
    """NF4 codes (0..15, uint8) of one block: divide by absmax, take the nearest level."""
    need_tensor("block", block)
    absmax = block.abs().max()
    normalized = block / absmax if absmax > 0 else block
    dist = (normalized.reshape(-1, 1) - NF4.reshape(1, -1)).abs()
    return dist.argmin(dim=1).to(torch.uint8).reshape(block.shape)


register(Exercise(
    id="ch3.nf4_codes", title="An NF4 lookup", kind="function",
    section="03_quantization.md",
    prompt=("Write nf4_codes(block) for a 1-D float tensor: divide by the block's absmax so "
            "values lie in [-1, 1], then return the index (0..15, torch.uint8) of the nearest of "
            "the 16 NF4 levels (course_lib.exercises.ch3.NF4). Raise ValueError for NaN or an "
            "empty block."),
    hint="absmax is max|x|, not max x; then argmin of |value - level| over the 16 levels.",
    reference=nf4_codes,
    cases=lambda: [
        Case((torch.tensor([0.5, -1.0, 0.0, 0.25]),)),
        Case((torch.tensor([-3.0, 1.0, 0.5, -0.2]),), note="the largest magnitude is negative"),
        Case((randn(64, seed=5),), note="a block of 64 normal weights"),
        Case((randn(64, seed=6, scale=0.02),), note="small weights"),
    ],
    bad_cases=lambda: [Case((torch.tensor([0.1, float("nan")]),), note="NaN"),
                       Case((torch.tensor([]),), note="empty")],
))

register(Exercise(
    id="ch3.bf16", title="Explain: why bf16 trains without loss scaling", kind="choice",
    section="03_quantization.md",
    prompt="Mixed-precision training in fp16 needs loss scaling; in bf16 it does not. Why?",
    choices={
        "a": "bf16 has more mantissa bits, so gradients are more precise.",
        "b": "bf16 has fp32's 8 exponent bits, so small gradients do not underflow to zero.",
        "c": "bf16 matrix products are faster.",
        "d": "bf16 stores the optimizer states in fp32.",
    },
    explanations={
        "a": "bf16 has fewer mantissa bits (7) than fp16 (10).",
        "b": "Its range matches fp32's; fp16's smallest subnormal is about 6e-8.",
        "c": "Speed does not decide whether small numbers survive.",
        "d": "Both recipes keep fp32 master weights and states; that is not the difference.",
    },
    hint="Compare the exponent fields of fp16 and bf16.",
    reference="b",
))
