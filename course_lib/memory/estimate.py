"""Memory by formula: bytes per value, weights, activations, KV cache, training, ZeRO.

Taught in book/02_memory.md. Sizes are in bytes; GB means 1e9 bytes (decimal), as in the
course notes and the ZeRO paper; GiB means 2**30 bytes, as GPU vendors size their cards.
"""

from __future__ import annotations

import math
import numbers

GB = 10**9
GiB = 2**30

_BYTES_PER_PARAM = {"fp32": 4.0, "fp16": 2.0, "bf16": 2.0, "fp8": 1.0, "int8": 1.0, "int4": 0.5}
# Optimizer states per parameter, each held in fp32 (4 bytes) unless said otherwise.
_OPTIMIZER_STATES = {"adam": 2, "adamw": 2, "sgd_momentum": 1, "sgd": 0}
# The course notes' rule: bytes per parameter at fp32 for weights, Adam, gradients, activations.
SEED_RULE = {"weights": 4, "optimizer": 8, "gradients": 4, "activations": 8}


# Sizes beyond this are not a model, a batch or a sequence but a typo (1e308), and would
# overflow the float arithmetic below into inf.
MAX_SIZE = 10**15


def _check_size(name: str, value, *, minimum: int = 1) -> None:
    """A count (parameters, batch, sequence, layers...): a whole number in [minimum, MAX_SIZE].

    Floats with a whole value (``7e9``) are accepted; bools, strings and tensors are not.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if value != int(value):
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    if not minimum <= value <= MAX_SIZE:
        raise ValueError(f"{name} must be between {minimum} and {MAX_SIZE:.0e}, got {value!r}")


def _check_nonneg(name: str, value) -> None:
    """A parameter count (0 allowed): a whole number in [0, MAX_SIZE]."""
    _check_size(name, value, minimum=0)


def _check_positive_int(name: str, value) -> None:
    """A size that must be at least 1: batch, sequence, hidden, layers, heads, devices."""
    _check_size(name, value, minimum=1)


def _check_real(name: str, value, *, low: float = 0.0, high: float = 1e6,
                low_open: bool = False) -> None:
    """A real quantity (bytes per value, a ratio) in [low, high] (or (low, high])."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if value < low or (low_open and value == low) or value > high:
        bracket = "(" if low_open else "["
        raise ValueError(f"{name} must be in {bracket}{low:g}, {high:g}], got {value!r}")


def _check_choice(name: str, value, choices) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, one of {sorted(choices)}; "
                        f"got {type(value).__name__} {value!r}")
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; expected one of {sorted(choices)}")


def bytes_per_param(dtype: str) -> float:
    """Bytes one value takes in ``dtype`` ("fp32", "fp16", "bf16", "fp8", "int8", "int4")."""
    _check_choice("dtype", dtype, _BYTES_PER_PARAM)
    return _BYTES_PER_PARAM[dtype]


def _optimizer_states(optimizer: str) -> int:
    _check_choice("optimizer", optimizer, _OPTIMIZER_STATES)
    return _OPTIMIZER_STATES[optimizer]


def model_memory(n_params: float, dtype: str) -> int:
    """Bytes to hold ``n_params`` weights in ``dtype`` (what loading the model takes)."""
    _check_nonneg("n_params", n_params)
    return round(n_params * bytes_per_param(dtype))


# ---------------------------------------------------------------------------------------
# Activations and KV cache
# ---------------------------------------------------------------------------------------


def activation_memory(
    batch: int,
    seq: int,
    hidden: int,
    n_layers: int,
    n_heads: int,
    bytes_per_value: float = 2,
    *,
    dropout: bool = True,
    d_ff: int | None = None,
    n_kv_heads: int | None = None,
    flash: bool = False,
    softmax_copies: int = 1,
    mlp: str = "gelu",
) -> int:
    """Bytes of activations a transformer stack saves for backward.

    With the defaults this is Korthikanti et al. (2022), Eq. 1: ``s*b*h*(34 + 5*a*s/h)``
    bytes per layer, which assumes GPT-3's architecture (dropout everywhere, a 4h-wide GELU
    MLP), 16-bit values and 1-byte dropout masks. In values: each layer saves 16 ``sbh``
    tensors (LayerNorm inputs 2, their outputs 2, Q, K, V, the output projection's input, and
    8 in the 4h-wide MLP: the first linear's output and the GELU's) and the ``a*s*s*b``
    softmax output; dropout adds its output (``a*s*s*b`` values) and three 1-byte masks
    (``a*s*s*b + 2*s*b*h``).

    ``mlp="swiglu"`` (Llama) saves four ``s*b*d_ff`` tensors: the gate's output (SiLU's
    input), SiLU's output, the up projection's output and their product (the down
    projection's input). ``d_ff`` is the MLP width (default ``4*hidden``), ``n_kv_heads``
    shrinks K and V (grouped-query attention), ``dropout=False`` drops outputs and masks of
    dropout, ``flash`` drops the s^2 terms (a fused attention kernel recomputes the scores in
    backward) and ``softmax_copies`` counts the ``a*s*s*b`` tensors an unfused softmax keeps
    (1 for ``torch.softmax``, 2 for the course's readable one: ``exp`` and the quotient).
    """
    for name, value in (("batch", batch), ("seq", seq), ("hidden", hidden),
                        ("n_layers", n_layers), ("n_heads", n_heads)):
        _check_positive_int(name, value)
    _check_real("bytes_per_value", bytes_per_value, high=64, low_open=True)
    _check_choice("mlp", mlp, ("gelu", "swiglu"))
    _check_size("softmax_copies", softmax_copies, minimum=1)
    for name, flag in (("dropout", dropout), ("flash", flash)):
        if not isinstance(flag, bool):
            raise TypeError(f"{name} must be True or False, got {flag!r}")
    if hidden % n_heads:
        raise ValueError(f"hidden ({hidden}) must be divisible by n_heads ({n_heads})")
    d_ff = 4 * hidden if d_ff is None else d_ff
    _check_positive_int("d_ff", d_ff)
    n_kv_heads = n_heads if n_kv_heads is None else n_kv_heads
    _check_positive_int("n_kv_heads", n_kv_heads)
    if n_heads % n_kv_heads:
        raise ValueError(f"n_kv_heads ({n_kv_heads}) must divide n_heads ({n_heads})")
    sbh = seq * batch * hidden
    mlp_values = (2 if mlp == "gelu" else 4) * seq * batch * d_ff
    values = sbh * (4 + 2) + 2 * sbh * n_kv_heads / n_heads + mlp_values
    mask_bytes = 0.0
    scores = n_heads * seq * seq * batch  # a*s*s*b
    if not flash:
        values += softmax_copies * scores  # softmax output (and unfused intermediates)
        if dropout:
            values += scores  # dropout output
            mask_bytes += scores
    if dropout:
        mask_bytes += 2 * sbh
    return round(n_layers * (values * bytes_per_value + mask_bytes))


def kv_cache_bytes(
    batch: int, seq: int, n_layers: int, n_kv_heads: int, head_dim: int, dtype: str = "fp16"
) -> int:
    """Bytes of the K and V cache for ``seq`` tokens: ``2 * b * s * L * n_kv * d_head * bytes``."""
    for name, value in (("batch", batch), ("seq", seq), ("n_layers", n_layers),
                        ("n_kv_heads", n_kv_heads), ("head_dim", head_dim)):
        _check_positive_int(name, value)
    return round(2 * batch * seq * n_layers * n_kv_heads * head_dim * bytes_per_param(dtype))


# ---------------------------------------------------------------------------------------
# Training memory and ZeRO
# ---------------------------------------------------------------------------------------


def training_memory(
    n_params: float,
    dtype: str = "fp32",
    optimizer: str = "adam",
    recipe: str = "seed",
    *,
    batch: int | None = None,
    seq: int | None = None,
    hidden: int | None = None,
    n_layers: int | None = None,
    n_heads: int | None = None,
    checkpointing: bool = False,
    **architecture,
) -> dict[str, int]:
    """Training memory by part (bytes): weights, gradients, optimizer, activations, total.

    ``recipe="seed"`` is the course notes' rule: 4 + 8 + 4 + 8 bytes per parameter at fp32
    (weights, two Adam states, gradients, an activation allowance), all scaled by
    ``bytes_per_param(dtype) / 4``; it takes no shapes. ``recipe="mixed"`` is the accounting
    of ZeRO (Rajbhandari et al. 2019): 16-bit weights and gradients, plus an fp32 master copy
    and fp32 optimizer states (2 + 2 + 12 = 16 bytes/param for Adam); with ``dtype="fp32"``
    there is no separate master copy. Its activations come from :func:`activation_memory`
    (16-bit values, Korthikanti et al. 2022; ``architecture`` passes ``dropout``, ``d_ff``,
    ``mlp``, ``n_kv_heads``, ``flash`` on) when all five shapes are given, else they are 0;
    ``checkpointing=True`` keeps only each layer's input (``2*s*b*h`` bytes per layer).
    """
    _check_nonneg("n_params", n_params)
    width = bytes_per_param(dtype)
    n_states = _optimizer_states(optimizer)
    _check_choice("recipe", recipe, ("seed", "mixed"))
    if not isinstance(checkpointing, bool):
        raise TypeError(f"checkpointing must be True or False, got {checkpointing!r}")
    unknown = set(architecture) - {"dropout", "d_ff", "mlp", "n_kv_heads", "flash"}
    if unknown:
        raise TypeError(f"training_memory: unexpected arguments {sorted(unknown)}")
    shapes = (batch, seq, hidden, n_layers, n_heads)
    given = [v is not None for v in shapes]
    if any(given) and not all(given):
        raise ValueError("give all of batch, seq, hidden, n_layers, n_heads, or none")
    if recipe == "seed":
        if any(given) or checkpointing or architecture:
            raise ValueError("recipe='seed' has a fixed activation allowance (8 bytes/param at "
                             "fp32): shapes, checkpointing and architecture need recipe='mixed'")
        scale = width / 4
        parts = {
            "weights": n_params * SEED_RULE["weights"] * scale,
            "gradients": n_params * SEED_RULE["gradients"] * scale,
            "optimizer": n_params * 4 * n_states * scale,
            "activations": n_params * SEED_RULE["activations"] * scale,
        }
    else:
        master = 0 if dtype == "fp32" else 4
        parts = {
            "weights": n_params * width,
            "gradients": n_params * width,
            "optimizer": n_params * (master + 4 * n_states),
            "activations": 0,
        }
        if not any(given) and (checkpointing or architecture):
            raise ValueError("checkpointing and architecture options need the shapes: batch, "
                             "seq, hidden, n_layers, n_heads")
        if all(given):
            # validates every shape (and the options) even when checkpointing ignores some
            stored = activation_memory(*shapes, bytes_per_value=2, **architecture)
            parts["activations"] = (2 * seq * batch * hidden * n_layers if checkpointing
                                    else stored)
    out = {k: round(v) for k, v in parts.items()}
    out["total"] = sum(out.values())
    return out


def zero_memory(n_params: float, n_devices: int, stage: int, k: int = 12) -> int:
    """Model-state bytes per device under ZeRO stage 0-3 (Rajbhandari et al. 2019, Fig. 1).

    Stage 0 (plain data parallel) holds (2 + 2 + K) bytes/param on every device; stage 1
    shards the K optimizer bytes, stage 2 also the 2 gradient bytes, stage 3 (FSDP) also the
    2 weight bytes, over ``n_devices``.
    """
    _check_nonneg("n_params", n_params)
    _check_positive_int("n_devices", n_devices)
    _check_real("k", k, high=1e3)
    if isinstance(stage, bool) or not isinstance(stage, numbers.Integral):
        raise TypeError(f"stage must be an integer 0-3, got {type(stage).__name__} {stage!r}")
    if stage not in (0, 1, 2, 3):
        raise ValueError(f"stage must be 0, 1, 2 or 3, got {stage!r}")
    psi, n = n_params, n_devices
    per_device = {
        0: (2 + 2 + k) * psi,
        1: (2 + 2) * psi + k * psi / n,
        2: 2 * psi + (2 + k) * psi / n,
        3: (2 + 2 + k) * psi / n,
    }[stage]
    return round(per_device)


def communication_volume(n_params: float, n_devices: int, strategy: str,
                         bytes_per_value: float = 2) -> int:
    """Bytes each device sends per training step with ring collectives.

    DDP (and ZeRO 1/2) all-reduces the gradients: a reduce-scatter plus an all-gather, each
    sending ``(N-1)/N`` of the gradient, so ``2 * (N-1)/N * Psi`` values. FSDP (ZeRO 3) adds
    an all-gather of the weights in forward and again in backward, and reduce-scatters the
    gradients: ``3 * (N-1)/N * Psi`` values, 1.5x DDP (ZeRO paper, section 7).
    """
    _check_nonneg("n_params", n_params)
    _check_positive_int("n_devices", n_devices)
    _check_real("bytes_per_value", bytes_per_value, high=64, low_open=True)
    factors = {"ddp": 2, "zero1": 2, "zero2": 2, "fsdp": 3, "zero3": 3}
    _check_choice("strategy", strategy, factors)
    factor = factors[strategy]
    return round(factor * (n_devices - 1) / n_devices * n_params * bytes_per_value)
