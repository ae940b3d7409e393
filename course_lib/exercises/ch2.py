"""Chapter 2 exercises (page 02_memory.md): model states under another optimizer, one layer's
activations with grouped-query attention, the time of a ring all-reduce, how many devices
ZeRO needs, and what FSDP pays for its memory."""

from __future__ import annotations

import math
from fractions import Fraction
from numbers import Integral, Real

from course_lib.exercises import Case, Exercise, register
from course_lib.exercises._util import need_int

PAGE = "02_memory.md"


# ------------------------------------------------------------------ 1. SGD with momentum
register(Exercise(
    id="ch2.sgd_momentum_gb", title="Model states of mixed-precision SGD with momentum",
    kind="number", section=PAGE, transfer=True,
    prompt=("A 7e9-parameter model trains in mixed precision (bf16 weights and gradients, fp32 "
            "master weights) with SGD with momentum: one fp32 momentum buffer per parameter. "
            "How many GB (1e9 bytes) of model states, activations aside? Within 1%."),
    hint=("List what exists per parameter: the 16-bit weight, its 16-bit gradient, the fp32 "
          "master copy, and the optimizer's states (how many does momentum SGD keep?)."),
    reference=7e9 * (2 + 2 + 4 + 4) / 1e9, tolerance=0.01,
    why=("Per parameter: 2 bytes of bf16 weight, 2 of bf16 gradient, 4 of fp32 master weight "
         "and 4 for the single fp32 momentum buffer, $2 + 2 + 4 + 4 = 12$ bytes (ZeRO's "
         "$K = 8$ instead of Adam's 12). $7 \\times 10^9 \\times 12 = 84 \\times 10^9$ bytes, "
         "84 GB: a quarter less than Adam's 112 GB, because Adam's second moment is gone. The "
         "master copy stays: the update is still added in fp32."),
))


# ------------------------------------------------------------------ 2. one layer's activations
def layer_activation_bytes(s: int, b: int, h: int, a: int, n_kv_heads: int | None = None,
                           mode: str = "stored") -> int:
    """Bytes one GPT-3-style layer keeps for backward (Korthikanti et al. 2022: 16-bit values,
    1-byte dropout masks), with ``n_kv_heads`` K/V heads (grouped-query attention).

    ``mode="stored"``: everything; ``"flash"``: a fused attention that keeps no s x s tensor;
    ``"recompute"``: full recomputation, only the layer's 16-bit input.
    """
    for name, value in (("s", s), ("b", b), ("h", h), ("a", a)):
        need_int(name, value, low=1)
    kv = a if n_kv_heads is None else n_kv_heads
    need_int("n_kv_heads", kv, low=1)
    if h % a:
        raise ValueError(f"layer_activation_bytes: h ({h}) must be divisible by a ({a})")
    if a % kv:
        raise ValueError(f"layer_activation_bytes: n_kv_heads ({kv}) must divide a ({a})")
    if mode not in ("stored", "flash", "recompute"):
        raise ValueError(f"layer_activation_bytes: mode must be 'stored', 'flash' or "
                         f"'recompute', got {mode!r}")
    sbh = s * b * h
    if mode == "recompute":
        return 2 * sbh
    kv_values = s * b * (h // a) * kv          # K (or V): n_kv_heads heads of h / a values
    per_layer = 34 * sbh - 2 * 2 * sbh + 2 * 2 * kv_values    # K and V shrink with GQA
    if mode == "stored":
        per_layer += 5 * a * s * s * b
    return per_layer


register(Exercise(
    id="ch2.layer_activations", title="One layer's activations, with grouped-query attention",
    kind="function", section=PAGE, transfer=True,
    prompt=("Write layer_activation_bytes(s, b, h, a, n_kv_heads=None, mode='stored') -> int: "
            "the bytes one GPT-3-style layer keeps for backward (34 s b h + 5 a s^2 b, 16-bit "
            "values, 1-byte masks), with K and V having n_kv_heads heads of h/a values; mode "
            "'flash' keeps no s x s tensor, 'recompute' only the layer's 16-bit input."),
    hint=("Start from the page's term table. Which rows hold K and V, and how many bytes per "
          "s b h do they take? With n_kv_heads heads each is s * b * (h / a) * n_kv_heads "
          "values. Flash removes every a s^2 b term; recomputation keeps one s b h tensor."),
    reference=layer_activation_bytes,
    cases=lambda: [
        Case((1, 1, 1, 1)),
        Case((2048, 1, 12288, 96), note="GPT-3 175B, one sequence"),
        Case((4096, 1, 4096, 32), {"n_kv_heads": 8}, note="grouped-query attention, 4 per group"),
        Case((4096, 2, 4096, 32), {"n_kv_heads": 1}, note="multi-query attention"),
        Case((512, 8, 1024, 16), {"mode": "flash"}, note="fused attention: no s^2 terms"),
        Case((512, 8, 1024, 16), {"n_kv_heads": 4, "mode": "flash"}),
        Case((4096, 1, 4096, 32), {"mode": "recompute"}, note="only the layer input"),
        Case((7, 3, 40, 5), {"n_kv_heads": 5}, note="n_kv_heads = a is plain attention"),
    ],
    bad_cases=lambda: [Case((0, 1, 64, 4), note="s = 0"),
                       Case((16, 1, 66, 4), note="h not divisible by a"),
                       Case((16, 1, 64, 4), {"n_kv_heads": 3}, note="n_kv_heads does not divide a"),
                       Case((16, 1, 64, 4), {"mode": "fast"}, note="unknown mode")],
    why=("In the term table Q, K and V take $2sbh$ bytes each. With $n_\\text{kv}$ K/V heads, K "
         "and V hold $s\\,b\\,(h/a)\\,n_\\text{kv}$ values each, so the layer keeps "
         "$34sbh - 4sbh + 4\\,s\\,b\\,(h/a)\\,n_\\text{kv} + 5as^2b$ bytes. Everything else (the "
         "LayerNorms, Q, the attention output, the MLP, the masks) does not depend on the K/V "
         "heads. GQA saves little *activation* memory (Llama-2-70B's 8 of 64 heads save "
         "$3.5\\,sbh$ of 34): its real saving is the KV cache at inference. A fused attention "
         "kernel drops the $5as^2b$ (probabilities, their dropout mask and output) because it "
         "recomputes them in backward; full recomputation keeps only the layer's input, "
         "$2sbh$, and runs the forward again."),
))


# ------------------------------------------------------------------ 3. time of a ring all-reduce
def ring_allreduce_seconds(n_bytes: float, p: int, bandwidth: float, latency: float) -> float:
    """Seconds a ring all-reduce of ``n_bytes`` over ``p`` devices takes when every step
    sends one chunk of ``n_bytes / p`` over links of ``bandwidth`` bytes/s and pays
    ``latency`` seconds of start-up: ``2 (p - 1) (latency + n_bytes / (p * bandwidth))``."""
    for name, value in (("n_bytes", n_bytes), ("bandwidth", bandwidth), ("latency", latency)):
        if isinstance(value, bool) or not isinstance(value, Real):
            raise TypeError(f"ring_allreduce_seconds: {name} must be a number, got {value!r}")
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"ring_allreduce_seconds: {name} must be finite and >= 0, "
                             f"got {value!r}")
    if bandwidth == 0:
        raise ValueError("ring_allreduce_seconds: bandwidth must be > 0")
    need_int("p", p, low=1)
    steps = 2 * (p - 1)
    return steps * (latency + n_bytes / (p * bandwidth))


register(Exercise(
    id="ch2.ring_seconds", title="How long a ring all-reduce takes", kind="function",
    section=PAGE, transfer=True, rtol=1e-9, atol=1e-12,
    prompt=("Write ring_allreduce_seconds(n_bytes, p, bandwidth, latency) -> float: the time "
            "of a ring all-reduce over p devices when each step sends one chunk over a link of "
            "`bandwidth` bytes/s and costs `latency` seconds to start."),
    hint=("Count the steps of both phases, and the bytes of one chunk. Every device sends at "
          "the same time, so a step takes as long as one chunk's transfer plus its latency."),
    reference=ring_allreduce_seconds,
    cases=lambda: [
        Case((1e9, 1, 1e9, 1e-5), note="one device: nothing to send"),
        Case((1e9, 2, 1e9, 0.0), note="no latency: 2 (p-1)/p of the bytes"),
        Case((2 * 7e9, 8, 50e9, 5e-6), note="7B bf16 gradients, 8 devices"),
        Case((2 * 7e9, 1024, 50e9, 5e-6), note="many devices: latency starts to count"),
        Case((4096.0, 64, 25e9, 1e-5), note="a tiny message: latency dominates"),
    ],
    bad_cases=lambda: [Case((1e9, 0, 1e9, 1e-5), note="p = 0"),
                       Case((1e9, 4, 0.0, 1e-5), note="bandwidth 0"),
                       Case((-1.0, 4, 1e9, 1e-5), note="negative size"),
                       Case((1e9, 2.5, 1e9, 1e-5), note="fractional p")],
    why=("Reduce-scatter and all-gather take $p - 1$ steps each. In every step each device "
         "sends one chunk of $M/p$ bytes to its neighbour, all at once, so a step costs "
         "$\\alpha + M/(p\\beta)$ for latency $\\alpha$ and bandwidth $\\beta$: "
         "$T = 2(p-1)\\,(\\alpha + M/(p\\beta))$. The bandwidth term tends to $2M/\\beta$, "
         "the same for any $p$ (the page's $2\\frac{N-1}{N}\\Psi$, in bytes); the latency "
         "term, $2(p-1)\\alpha$, grows with $p$. For 14 GB at 50 GB/s and 5 microseconds: "
         "0.49 s of transfer and 0.07 ms of latency on 8 devices, 0.56 s and 10 ms on 1024. "
         "Large clusters therefore use trees or hierarchical rings for small messages, whose "
         "time is nearly all latency. "
         "With one device nothing is sent."),
))


# ------------------------------------------------------------------ 4. how many devices for ZeRO
def min_devices(n_params: float, card_bytes: float, stage: int) -> int | None:
    """The fewest devices on which mixed-precision Adam's model states (2 + 2 + 12 bytes per
    parameter) fit ``card_bytes`` per device under ZeRO ``stage`` 0-3; ``None`` if no number
    of devices is enough (stages 0-2 keep an unsharded part on every device)."""
    for name, value in (("n_params", n_params), ("card_bytes", card_bytes)):
        if isinstance(value, bool) or not isinstance(value, Real):
            raise TypeError(f"min_devices: {name} must be a number, got {value!r}")
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"min_devices: {name} must be finite and > 0, got {value!r}")
    if isinstance(stage, bool) or not isinstance(stage, Integral):
        raise TypeError(f"min_devices: stage must be an int 0-3, got {stage!r}")
    if stage not in (0, 1, 2, 3):
        raise ValueError(f"min_devices: stage must be 0, 1, 2 or 3, got {stage!r}")
    psi, card = Fraction(n_params), Fraction(card_bytes)
    # bytes per device = kept + sharded / N, exactly as in the page's stage table
    kept, sharded = {0: (16, 0), 1: (4, 12), 2: (2, 14), 3: (0, 16)}[stage]
    if kept * psi > card or (sharded and kept * psi == card):
        return None
    if sharded == 0:
        return 1
    return max(1, math.ceil(sharded * psi / (card - kept * psi)))


register(Exercise(
    id="ch2.zero_min_devices", title="How many devices ZeRO needs", kind="function",
    section=PAGE, transfer=True,
    prompt=("Write min_devices(n_params, card_bytes, stage) -> int | None: the fewest devices "
            "on which mixed-precision Adam's model states fit card_bytes per device under ZeRO "
            "stage 0-3, or None if no number of devices is enough."),
    hint=("Write the stage's bytes per device as kept * Psi + sharded * Psi / N (the page's "
          "table) and solve for N. What happens when the kept part alone is too big?"),
    reference=min_devices,
    cases=lambda: [
        Case((1_000_000_000, 80 * 2**30, 0), note="1B fits one 80 GiB card"),
        Case((7_000_000_000, 80 * 2**30, 0), note="DDP: 7B never fits 80 GiB"),
        Case((7_000_000_000, 80 * 2**30, 3), note="FSDP: 112 GB over 85.9 GB cards"),
        Case((30_000_000_000, 80 * 2**30, 2), note="stage 2: 60 GB stays on every card"),
        Case((30_000_000_000, 80 * 2**30, 1), note="stage 1: 120 GB stays on every card"),
        Case((7_500_000_000, 32 * 10**9, 1)),
        Case((70_000_000_000, 24 * 2**30, 3), note="70B on 24 GiB cards"),
        Case((20, 40, 2), note="the unsharded part alone fills the card"),
    ],
    bad_cases=lambda: [Case((0, 80 * 2**30, 3), note="no parameters"),
                       Case((7e9, 80 * 2**30, 4), note="stage 4"),
                       Case((7e9, -1, 3), note="negative card")],
    why=("From the stage table, bytes per device $= k\\Psi + s\\Psi/N$ with $(k, s) = (16, 0), "
         "(4, 12), (2, 14), (0, 16)$ for stages 0-3. It fits when $s\\Psi/N \\le C - k\\Psi$, so "
         "$N = \\lceil s\\Psi / (C - k\\Psi) \\rceil$ if $k\\Psi < C$, and no $N$ helps if the "
         "unsharded $k\\Psi$ alone fills the card. A 30B model on 80 GiB cards: stage 2 keeps "
         "60 GB everywhere and needs $\\lceil 420 / 25.9 \\rceil = 17$ devices; stage 1 keeps "
         "120 GB and never fits; stage 3 needs $\\lceil 480 / 85.9 \\rceil = 6$. Exact fractions "
         "avoid a float landing a hair above a whole number."),
))


# ------------------------------------------------------------------ 5. what FSDP pays
register(Exercise(
    id="ch2.fsdp_trade", title="What FSDP pays for its memory", kind="choice", section=PAGE,
    prompt=("FSDP (ZeRO stage 3) divides each device's model states by the number of devices. "
            "What does it pay for that, compared with DDP?"),
    choices={
        "a": "Communication: every step all-gathers each layer's weights in forward and again "
             "in backward, about 1.5 times the bytes DDP's all-reduce sends",
        "b": "Accuracy: each device updates only its own shard, so training converges to a "
             "different model",
        "c": "Compute: every layer's forward runs twice, as in activation recomputation",
        "d": "Nothing: sharding is free, DDP is simply the older method",
    },
    explanations={
        "a": "Right: 3 (N-1)/N of the weights per step instead of 2 (N-1)/N.",
        "b": "The shards together are one model; the page's FSDP run ends bit-identical to DDP.",
        "c": "That is activation checkpointing, a separate choice; FSDP gathers weights, it does "
             "not recompute the forward.",
        "d": "The weights must travel to every device before each layer runs, twice a step.",
    },
    hint="Look at the communication section: what must arrive before a layer can run?",
    reference="a",
    why=("FSDP stores $1/N$ of every weight, so before a layer runs (forward and again in "
         "backward) its full weights are all-gathered, then freed; the gradients are "
         "reduce-scattered. That is $3\\frac{N-1}{N}\\Psi$ values sent per device per step "
         "against DDP's $2\\frac{N-1}{N}\\Psi$: 1.5 times the traffic, hidden by overlapping "
         "the gathers with compute. The arithmetic is unchanged (the page's DDP and FSDP runs "
         "end with the same weights, bit for bit), and no forward runs twice."),
))
