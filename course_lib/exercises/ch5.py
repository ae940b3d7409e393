"""Chapter 5 exercises (page 05_finetuning.md), in page order: an adapter's size on a model
the page did not show, merging an adapter, a confidence interval for a measured accuracy,
McNemar's test from a table of counts, and what forgetting is measured from after QLoRA's
quantization."""

from __future__ import annotations

import math

import torch

from course_lib.exercises import Case, Exercise, register
from course_lib.exercises._util import need_int, need_real, need_tensor, randn

# Exercise 1: a Llama-3.2-1B-shaped model (d_model 2048, 16 layers, 32 query heads and 8
# key/value heads of 64 dimensions), LoRA of rank 16 on q_proj and v_proj, saved in bf16.
_D, _LAYERS, _KV, _R = 2048, 16, 8 * 64, 16
_ADAPTER_PARAMS = _LAYERS * (_R * (_D + _D) + _R * (_D + _KV))   # q: 2048->2048, v: 2048->512

register(Exercise(
    id="ch5.adapter_bytes", title="The size of an adapter file", kind="number",
    section="05_finetuning.md",
    prompt=("A Llama-style model: d_model 2048, 16 layers, 32 query heads and 8 key/value heads "
            "of 64 dims. LoRA r = 16 on q_proj and v_proj only, saved in bf16. How many bytes "
            "does the adapter file hold (tensors only)?"),
    hint=("Work out each adapted matrix's shape first: with 8 key/value heads of 64, v_proj "
          "maps 2048 numbers to 8 x 64. Then r (d_in + d_out) per matrix, times the layers, "
          "times the bytes of one bf16 number."),
    reference=2 * _ADAPTER_PARAMS, tolerance=0.0, transfer=True,
    why=(
        "Grouped-query attention makes the two projections different shapes: $W_q$ is "
        "$2048 \\times 2048$, but $W_v$ produces only $8 \\times 64 = 512$ numbers, so it is "
        "$512 \\times 2048$.\n\n"
        "- $W_q$: $r(d_{in} + d_{out}) = 16 \\times (2048 + 2048) = 65{,}536$\n"
        "- $W_v$: $16 \\times (2048 + 512) = 40{,}960$\n"
        "- per layer $106{,}496$; over 16 layers $1{,}703{,}936$ trainable parameters\n"
        "- at 2 bytes each (bf16): $3{,}407{,}872$ bytes, about 3.3 MiB.\n\n"
        "The model itself has about 1.2 billion parameters (2.5 GB in bf16): the adapter is "
        "about 0.14 % of it, which is why one base can carry many of them."),
))


def merge(W, A, B, alpha):
    """W + (alpha / r) B A: the adapter folded into one matrix of W's shape."""
    for name, t in (("W", W), ("A", A), ("B", B)):
        need_tensor(name, t, min_dim=2)
    need_real("alpha", alpha, 0.0, float("inf"))
    r = A.shape[0]
    if A.dim() != 2 or B.dim() != 2 or A.shape[1] != W.shape[1] or B.shape != (W.shape[0], r):
        raise ValueError(f"merge: A {tuple(A.shape)} and B {tuple(B.shape)} do not fit "
                         f"W {tuple(W.shape)}")
    return W + (alpha / r) * (B @ A)


register(Exercise(
    id="ch5.merge", title="Merge an adapter into its weight", kind="function",
    section="05_finetuning.md",
    prompt=("Write merge(W, A, B, alpha) -> W + (alpha / r) B A, with W (d_out, d_in), "
            "A (r, d_in), B (d_out, r). Raise ValueError when A or B do not fit W."),
    hint=("The rank is A's number of rows; B @ A has W's shape; the scale is alpha / r, the "
          "same one the adapter's forward pass uses."),
    reference=merge, atol=1e-5, rtol=1e-5, transfer=False,
    cases=lambda: [
        Case((randn(4, 6, seed=1), randn(2, 6, seed=2), torch.zeros(4, 2), 4.0),
             note="B = 0: merging changes nothing"),
        Case((randn(4, 6, seed=3), randn(2, 6, seed=4), randn(4, 2, seed=5), 4.0),
             note="rank 2, alpha 4"),
        Case((randn(3, 5, seed=6), randn(1, 5, seed=7), randn(3, 1, seed=8), 2.0),
             note="rank 1, alpha 2"),
        Case((randn(8, 8, seed=9), randn(4, 8, seed=10), randn(8, 4, seed=11), 16.0),
             note="rank 4, alpha 16"),
    ],
    bad_cases=lambda: [
        Case((randn(4, 6), randn(2, 5), randn(4, 2), 4.0), note="A is 5 wide, W is 6"),
        Case((randn(4, 6), randn(2, 6), randn(2, 4), 4.0), note="B is transposed"),
    ],
    why=(
        "For every input $x$, $Wx + \\frac{\\alpha}{r} B(Ax) = (W + \\frac{\\alpha}{r} BA)x$: "
        "matrix products are associative and distribute over the sum, so folding the adapter "
        "into $W$ changes no output (up to float rounding, since the sums run in another "
        "order). Check it: wrap a `torch.nn.Linear` in `peft.LoRALinear`, give its `lora_B` "
        "random values, and compare `layer(x)` with `x @ merge(W, A, B, alpha).T + bias`. "
        "After merging, inference costs exactly what the base costs; the price is that the "
        "merged weight serves only this one task (section 3's tenants need the unmerged "
        "form)."),
))


def wilson(k, n):
    """The 95% Wilson score interval (low, high) for k successes in n trials."""
    need_int("n", n, low=1)
    need_int("k", k, low=0)
    if k > n:
        raise ValueError(f"wilson: k={k} is more than n={n}")
    z = 1.959963984540054                       # the normal's 97.5% point
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


register(Exercise(
    id="ch5.wilson", title="A confidence interval for an accuracy", kind="function",
    section="05_finetuning.md",
    prompt=("Write wilson(k, n) -> (low, high), the 95% Wilson interval for k right answers "
            "out of n (z = 1.959964). Raise ValueError for n < 1, k < 0 or k > n."),
    hint=("Compute p = k / n, then the centre (p + z^2/(2n)) / (1 + z^2/n) and the half-width "
          "z / (1 + z^2/n) * sqrt(p(1-p)/n + z^2/(4n^2)); clip to [0, 1]."),
    reference=wilson, atol=1e-4, rtol=0.0, transfer=True,
    cases=lambda: [
        Case((7, 10), note="7 of 10"),
        Case((150, 300), note="half right on 300 questions"),
        Case((0, 10), note="none right: the interval is not [0, 0]"),
        Case((10, 10), note="all right: the interval is not [1, 1]"),
        Case((1, 1), note="one question"),
        Case((287, 300), note="near the top"),
    ],
    bad_cases=lambda: [
        Case((11, 10), note="k > n"),
        Case((0, 0), note="no trials"),
        Case((-1, 10), note="negative k"),
    ],
    why=(
        "The Wilson interval is every accuracy $p_0$ that a score test would not reject: "
        "$|\\hat p - p_0| \\le z \\sqrt{p_0 (1 - p_0) / n}$. Squaring gives a quadratic in "
        "$p_0$; its two roots are the centre $\\pm$ half-width above. The centre is pulled "
        "toward $1/2$ by $z^2 \\approx 4$ pseudo-questions, so 0 of 10 gives about "
        "$[0, 0.28]$ instead of the normal (Wald) interval's $[0, 0]$, which claims "
        "certainty from ten questions.\n\n"
        "```python\n"
        "z = 1.959964\n"
        "p = k / n\n"
        "centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)\n"
        "half = z / (1 + z**2 / n) * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))\n"
        "return max(0.0, centre - half), min(1.0, centre + half)\n"
        "```\n\n"
        "On 300 questions an accuracy near 50 % is known to about $\\pm 5.6$ points: that is "
        "why the chapter compares runs on the same questions (paired) rather than by two "
        "such intervals."),
))


# Exercise 4: runs A and B on the same 100 questions.
_BOTH, _ONLY_A, _ONLY_B, _NEITHER = 61, 9, 2, 28
_DISCORDANT = _ONLY_A + _ONLY_B
_MCNEMAR_P = min(1.0, 2 * sum(math.comb(_DISCORDANT, i)
                              for i in range(min(_ONLY_A, _ONLY_B) + 1)) / 2 ** _DISCORDANT)

register(Exercise(
    id="ch5.mcnemar_p", title="McNemar's test from a table of counts", kind="number",
    section="05_finetuning.md",
    prompt=("On the same 100 questions: both right 61, only A right 9, only B right 2, both "
            "wrong 28. What is the exact two-sided McNemar p-value?"),
    hint=("Only the questions where the runs disagree say which is better. Under 'equally "
          "accurate' each of them is a fair coin flip: how likely is a split at least this "
          "uneven, in either direction?"),
    reference=_MCNEMAR_P, tolerance=1e-3, transfer=True,
    why=(
        "The 61 questions both got right and the 28 both got wrong are the same for A and B: "
        "they say nothing about which is better. The $9 + 2 = 11$ discordant questions do. "
        "If A and B were equally accurate, each would be A's with probability $1/2$, so A's "
        "count is Binomial(11, 1/2). A split at least as uneven as 9 to 2, either way, is "
        "0, 1, 2, 9, 10 or 11 wins for A:\n\n"
        "$$p = 2 \\cdot \\frac{\\binom{11}{0} + \\binom{11}{1} + \\binom{11}{2}}{2^{11}} = "
        "2 \\cdot \\frac{1 + 11 + 55}{2048} = \\frac{134}{2048} \\approx 0.065.$$\n\n"
        "A is 7 points ahead (70 % against 63 %), yet a split this uneven happens 6.5 % of "
        "the time by luck alone: not below the usual 0.05. `evaluate.mcnemar` gives the same "
        "number from the two lists of right/wrong. The one-sided value (0.033) answers "
        "another question, 'is A better?', decided before looking."),
))


register(Exercise(
    id="ch5.forgetting_base", title="Forgetting, measured from the right start",
    kind="choice", section="05_finetuning.md",
    prompt=("QLoRA: quantize an fp32 model to NF4, train a LoRA adapter on the 4-bit base, and "
            "report forgetting as story perplexity after training minus the fp32 model's. "
            "What is wrong with that number, if anything?"),
    choices={
        "a": "Nothing: QLoRA freezes the base, so the adapter is the only thing that changed.",
        "b": "It charges the rounding error of 4-bit quantization, present before the first "
             "training step, to fine-tuning; the reference should be the 4-bit base with the "
             "adapter at its start (B = 0).",
        "c": "It understates forgetting: quantization removes noise from the weights, so the "
             "4-bit base has a lower perplexity than the fp32 one.",
        "d": "Perplexities of a 4-bit and an fp32 model cannot be compared at all, because "
             "their logits are computed in different number formats.",
    },
    explanations={
        "a": "The base is frozen after it was quantized: quantizing already changed every "
             "weight, before training began.",
        "b": "The model training started from is the 4-bit base; only what changes after it "
             "is fine-tuning's doing.",
        "c": "Rounding every weight to one of 16 levels adds error; it does not remove any. "
             "The 4-bit base's perplexity is, if anything, higher.",
        "d": "Perplexity is computed from the output probabilities, whatever format the "
             "weights are stored in; chapter 3 compares exactly these two.",
    },
    hint=("Section 7 measured forgetting from the chat base, not from `base`. Which model did "
          "QLoRA's training start from, and what happened to it before the first step?"),
    reference="b", transfer=True,
    why=(
        "Forgetting caused by fine-tuning is the change from the model training *started* "
        "from. For QLoRA that is the NF4 base with the adapter at its start ($B = 0$, so the "
        "adapter adds nothing): quantizing rounded every weight and raised the perplexity "
        "(chapter 3 measures by how much) before a single gradient step. Measured from the "
        "fp32 model, that rounding error is charged to fine-tuning. It is section 7's rule in "
        "another setting: there the chat base's new `<|end|>` output row raised the story "
        "perplexity before training, and the page measures from the chat base for the same "
        "reason. Report both numbers if the total matters to users (what quantization cost, "
        "and what training cost), but do not add them into one and call it forgetting."),
))
