"""Chapter 3 exercises: a number format the page did not show, group-wise absmax, NF4's bytes
per parameter, LLM.int8()'s outlier features in a batch, and which format holds a training
run's values. Registered in page order."""

from __future__ import annotations

import torch

from course_lib.exercises import Case, Exercise, register
from course_lib.exercises._util import randn


def _int_arg(func: str, name: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{func}: {name} must be an int, got {value!r}")
    if value < low:
        raise ValueError(f"{func}: {name} must be at least {low}, got {value}")
    return value


def _tensor_arg(func: str, name: str, x, ndim: int | None = None) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"{func}: {name} must be a float torch.Tensor, got {type(x).__name__}")
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{func}: {name} must have {ndim} dims, got shape {tuple(x.shape)}")
    if x.numel() == 0:
        raise ValueError(f"{func}: {name} is empty")
    if not torch.isfinite(x).all():
        raise ValueError(f"{func}: {name} holds NaN or infinity")
    return x


# ------------------------------------------------------------------ 1. a new number format
def format_limits(exp_bits: int, man_bits: int) -> tuple[float, float, float]:
    """(largest finite value, smallest positive normal value, epsilon) of an IEEE-style float
    with 1 sign bit, ``exp_bits`` exponent bits and ``man_bits`` mantissa bits, whose all-ones
    exponent field is reserved for infinity and NaN (as in fp16)."""
    _int_arg("format_limits", "exp_bits", exp_bits, 2)
    _int_arg("format_limits", "man_bits", man_bits, 1)
    bias = 2 ** (exp_bits - 1) - 1
    top_exponent = (2**exp_bits - 2) - bias  # the largest field that is not inf/NaN
    largest = (2 - 2.0**-man_bits) * 2.0**top_exponent  # 1.11...1 x 2^top
    smallest_normal = 2.0 ** (1 - bias)  # field 1, mantissa 0
    epsilon = 2.0**-man_bits  # the gap between 1 and the next number
    return largest, smallest_normal, epsilon


register(Exercise(
    id="ch3.format_limits", title="A format the page did not show: FP6", kind="function",
    section="03_quantization.md", transfer=True,
    prompt=("Write format_limits(exp_bits, man_bits) -> (largest finite, smallest normal, "
            "epsilon) for an IEEE-style float whose all-ones exponent is inf/NaN."),
    hint=("The bias is 2**(k-1) - 1; the largest exponent field that still holds numbers is "
          "2**k - 2, and the largest mantissa is all ones."),
    why=("The three numbers come straight from the bit layout. The bias is $2^{k-1}-1$. The "
         "all-ones exponent field $2^k - 1$ is reserved, so the largest true exponent is "
         "$(2^k - 2) - \\text{bias}$, and with the mantissa all ones the significand is "
         "$2 - 2^{-m}$. The smallest normal number has field 1 and mantissa 0: "
         "$2^{1-\\text{bias}}$. Epsilon is the value of the last mantissa bit at 1, $2^{-m}$. "
         "For FP6 E3M2 (bias 3) that gives $1.75 \\times 2^{3} = 14$, $0.25$ and $0.25$; E2M3 "
         "(bias 1) gives $1.875 \\times 2^{1} = 3.75$, $1$ and $0.125$: one exponent bit moved "
         "to the mantissa halves epsilon and shrinks the range about fourfold. (The OCP MX "
         "formats FP6 E3M2 and E2M3 reserve no inf/NaN patterns and so reach 28 and 7.5; this "
         "exercise keeps fp16's rule.)"),
    reference=format_limits, atol=0.0, rtol=1e-12,
    cases=lambda: [
        Case((3, 2), note="FP6 E3M2"),
        Case((2, 3), note="FP6 E2M3"),
        Case((5, 10), note="fp16"),
        Case((8, 7), note="bf16"),
        Case((4, 3), note="E4M3 with IEEE specials (not the E4M3 the page shows)"),
        Case((2, 1), note="the smallest layout"),
    ],
    bad_cases=lambda: [Case((1, 2), note="1 exponent bit"), Case((3, 0), note="no mantissa"),
                       Case((2.5, 2), note="a fractional width")],
))


# ------------------------------------------------------------------ 2. group-wise absmax
def group_absmax(w: torch.Tensor, group_size: int, bits: int = 4
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Absmax quantization with one scale per group of ``group_size`` consecutive weights of
    each row: ``(q int8 of w's shape, scale of shape (rows, cols // group_size))``."""
    _tensor_arg("group_absmax", "w", w, ndim=2)
    _int_arg("group_absmax", "group_size", group_size, 1)
    _int_arg("group_absmax", "bits", bits, 2)
    if bits > 8:
        raise ValueError(f"group_absmax: bits must be at most 8 (int8 storage), got {bits}")
    rows, cols = w.shape
    if cols % group_size:
        raise ValueError(f"group_absmax: group_size {group_size} does not divide the "
                         f"{cols} columns of w")
    qmax = 2 ** (bits - 1) - 1
    groups = w.reshape(rows, cols // group_size, group_size)
    scale = groups.abs().amax(dim=2) / qmax  # (rows, n_groups)
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))  # an all-zero group: codes 0
    q = torch.round(groups / safe[..., None]).clamp(-qmax, qmax).to(torch.int8)
    return q.reshape(rows, cols), scale


register(Exercise(
    id="ch3.group_absmax", title="Absmax with one scale per group", kind="function",
    section="03_quantization.md", transfer=True,
    prompt=("Write group_absmax(w, group_size, bits=4) -> (q int8 shaped like w, scale of "
            "shape (rows, cols // group_size)): absmax per group of consecutive weights."),
    hint=("Reshape w to (rows, cols // group_size, group_size) so each group is a last-axis "
          "slice; take amax of |w| over that axis, divide by 2**(bits-1) - 1, and guard the "
          "all-zero group."),
    why=("A reshape does the grouping: `w.reshape(rows, n_groups, group_size)` puts each group "
         "of consecutive weights of a row on the last axis, so one `amax` over that axis gives "
         "every group's absmax at once. The grid is symmetric, $q \\in [-q_{max}, q_{max}]$ with "
         "$q_{max} = 2^{b-1} - 1$ (7 for 4 bits), so each group's scale is "
         "$\\max|w_g| / q_{max}$ and no value moves by more than half its own group's step. An "
         "all-zero group would divide by 0; it gets scale 0 and codes 0, which dequantize to "
         "exactly 0. With `group_size = cols` this is per-channel absmax, with "
         "`group_size = 1` every weight is its own scale (and the codes are all $\\pm q_{max}$ "
         "or 0)."),
    reference=group_absmax, atol=1e-7, rtol=1e-6,
    cases=lambda: [
        Case((torch.tensor([[1.0, -2.0, 0.5, 0.25]]), 2), note="one row, two groups"),
        Case((torch.tensor([[0.0, 0.0, 3.0, -1.0], [1.0, 2.0, -4.0, 8.0]]), 2),
             note="an all-zero group"),
        Case((randn(4, 16, seed=3), 8)),
        Case((randn(3, 12, seed=7), 4), {"bits": 8}, note="8 bits"),
        Case((randn(2, 6, seed=9), 6), note="group_size = cols: per channel"),
        Case((randn(2, 4, seed=11), 1), note="group_size = 1"),
    ],
    bad_cases=lambda: [Case((randn(2, 6), 4), note="4 does not divide 6"),
                       Case((randn(2, 6), 0), note="group_size 0"),
                       Case((torch.tensor([[1.0, float("nan")]]), 2), note="NaN"),
                       Case((randn(8), 4), note="a 1-D tensor")],
))


# ------------------------------------------------------------------ 3. NF4's bytes
def nf4_bytes_per_param(block_size: int = 64, double_quant: bool = False,
                        block_size2: int = 256) -> float:
    """Bytes per parameter of NF4 weights with their scales: 4-bit codes, one fp32 absmax per
    ``block_size`` weights, or (double quantization) one 8-bit absmax per block and one fp32
    scale per ``block_size2`` absmaxes."""
    _int_arg("nf4_bytes_per_param", "block_size", block_size, 1)
    _int_arg("nf4_bytes_per_param", "block_size2", block_size2, 1)
    if not isinstance(double_quant, bool):
        raise TypeError(f"nf4_bytes_per_param: double_quant must be a bool, got {double_quant!r}")
    code_bytes = 4 / 8
    if not double_quant:
        return code_bytes + 4 / block_size
    return code_bytes + 1 / block_size + 4 / (block_size * block_size2)


register(Exercise(
    id="ch3.nf4_bytes", title="NF4's bytes per parameter, any block size", kind="function",
    section="03_quantization.md", transfer=True,
    prompt=("Write nf4_bytes_per_param(block_size=64, double_quant=False, block_size2=256) -> "
            "bytes per parameter of NF4 codes plus their scales."),
    hint=("Add up the bytes of one block and divide by its weights: 64 codes of half a byte, "
          "one 4-byte absmax; with double quantization that absmax is 1 byte, and 4 more bytes "
          "are shared by block_size2 blocks."),
    why=("Count bytes per block and divide by the weights in it. A code is 4 bits, $1/2$ byte. "
         "Without double quantization each block of $B$ weights carries one fp32 absmax: "
         "$1/2 + 4/B$ bytes per parameter, $0.5625$ for $B = 64$. With it, the absmax is an "
         "8-bit code (1 byte per block) and every $B_2$ absmaxes share one fp32 scale: "
         "$1/2 + 1/B + 4/(B B_2)$, $0.5159$ for $B = 64$, $B_2 = 256$. Plain NF4 beats that only "
         "when $4/B < 0.0159$, for blocks of more than 252 weights ($0.5156$ at $B = 256$), "
         "but one outlier then sets "
         "the step for more weights, which is why QLoRA keeps blocks of 64 and quantizes the "
         "scales instead."),
    reference=nf4_bytes_per_param, atol=0.0, rtol=1e-12,
    cases=lambda: [
        Case((64,), note="QLoRA's block, no double quantization"),
        Case((64, True), note="QLoRA's setting"),
        Case((128,)), Case((32, True)), Case((64, True, 128), note="second-level blocks of 128"),
        Case((1,), note="a scale for every weight"),
    ],
    bad_cases=lambda: [Case((0,), note="block_size 0"), Case((64, True, 0), note="block_size2 0"),
                       Case((64.0,), note="a float block size")],
))


# ------------------------------------------------------------------ 4. outliers in a batch
def outlier_features(x: torch.Tensor, threshold: float = 6.0) -> torch.Tensor:
    """Sorted int64 indices of the features (last dim) of ``x`` (..., features) where some
    token of some sequence reaches ``|x| >= threshold``."""
    _tensor_arg("outlier_features", "x", x)
    if x.ndim < 2:
        raise ValueError(f"outlier_features: x must be (..., tokens, features), got shape "
                         f"{tuple(x.shape)}")
    if isinstance(threshold, bool) or not isinstance(threshold, int | float):
        raise TypeError(f"outlier_features: threshold must be a number, got {threshold!r}")
    if not threshold > 0:
        raise ValueError(f"outlier_features: threshold must be positive, got {threshold}")
    hit = (x.abs() >= threshold).reshape(-1, x.shape[-1]).any(dim=0)  # over every token
    return hit.nonzero().flatten()


register(Exercise(
    id="ch3.outliers", title="LLM.int8()'s outlier features in a batch", kind="function",
    section="03_quantization.md", transfer=False,
    prompt=("Write outlier_features(x, threshold=6.0) for x of shape (batch, seq, features): "
            "the sorted int64 indices of features where any |x| >= threshold."),
    hint=("A feature is a column: flatten every axis but the last into tokens, compare with "
          "the threshold (>=), and ask whether any token hits in each column."),
    why=("LLM.int8() decides per *feature*, not per value: a column goes to 16 bits when any "
         "token, in any sequence of the batch, reaches the threshold, because the product "
         "$XW^\\top$ can only be split along the inner dimension (whole columns of $X$ with the "
         "matching columns of $W$). So `x.reshape(-1, features)` turns the batch into one long "
         "list of tokens, `(x.abs() >= threshold).any(dim=0)` marks the columns, and "
         "`nonzero()` lists them in order. Reaching the threshold exactly counts (`>=`), as in "
         "the paper; a negative value counts by its magnitude."),
    reference=outlier_features,
    cases=lambda: [
        Case((torch.tensor([[[1.0, 7.0, 0.5], [0.0, -1.0, 2.0]]]),), note="one sequence"),
        Case((torch.tensor([[[0.1, 0.2]], [[-6.5, 0.0]]]),), note="the outlier is negative"),
        Case((torch.tensor([[[6.0, 5.99]]]),), note="exactly at the threshold"),
        Case((randn(2, 5, 16, seed=1, scale=3.0),), note="a batch of 2"),
        Case((randn(3, 4, 8, seed=2),), {"threshold": 1.5}, note="threshold 1.5"),
        Case((randn(2, 3, 4, seed=3, scale=0.1),), note="no outliers at all"),
    ],
    bad_cases=lambda: [Case((torch.tensor([[[1.0, float("nan")]]]),), note="NaN"),
                       Case((randn(2, 3, 4), 0.0), note="threshold 0"),
                       Case((torch.zeros(2, 0, 4),), note="empty")],
))


# ------------------------------------------------------------------ 5. which format holds it
register(Exercise(
    id="ch3.range_choice", title="Which 16- or 8-bit format holds a training run",
    kind="choice", section="03_quantization.md", transfer=True,
    prompt=("An attention logit reaches 70,000 and some gradients are near 1e-9. Which format "
            "stores both without loss scaling or overflow?"),
    choices={
        "a": "fp16: it has the most mantissa bits of the four.",
        "b": "bf16: it has fp32's 8 exponent bits.",
        "c": "FP8 E5M2: it has fp16's 5 exponent bits and so fp16's range.",
        "d": "FP8 E4M3: without infinities its top exponent holds ordinary numbers.",
    },
    explanations={
        "a": "fp16 tops out at 65504, so 70,000 overflows to infinity; 1e-9 is also below its "
             "smallest subnormal (about 6e-8) and becomes 0.",
        "b": "bf16 reaches about 3.4e38 and its smallest normal number is about 1.2e-38, like "
             "fp32: both values fit, with about 2-3 significant digits.",
        "c": "E5M2 shares fp16's exponent range but stops at 57344, so 70,000 overflows, and "
             "1e-9 underflows as in fp16.",
        "d": "E4M3's largest number is 448.",
    },
    hint="Range is set by the exponent bits; compare each format's largest and smallest number "
         "with 70,000 and 1e-9 (the format table of section 2).",
    why=("Whether a value survives at all is a question of *range*, and range comes from the "
         "exponent field. 70,000 is above fp16's maximum (65504) and E5M2's (57344), and far "
         "above E4M3's (448); 1e-9 is below fp16's smallest subnormal, $2^{-24} \\approx "
         "6 \\times 10^{-8}$. Only bf16, with fp32's 8 exponent bits, spans $10^{-38}$ to "
         "$3 \\times 10^{38}$. It pays in precision: 7 mantissa bits, so 70,000 is stored as "
         "70,144, the nearest bf16 number, 0.2 % off. That trade (range kept, precision "
         "cut) is why bf16 trains without loss scaling and fp16 does not."),
    reference="b",
))
