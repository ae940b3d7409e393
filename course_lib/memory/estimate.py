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


def _check_nonneg(name: str, value: float) -> None:
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")


def _check_positive_int(name: str, value: int) -> None:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def bytes_per_param(dtype: str) -> float:
    """Bytes one value takes in ``dtype`` ("fp32", "fp16", "bf16", "fp8", "int8", "int4")."""
    try:
        return _BYTES_PER_PARAM[dtype]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown dtype {dtype!r}; expected one of {sorted(_BYTES_PER_PARAM)}"
        ) from None


def _optimizer_states(optimizer: str) -> int:
    try:
        return _OPTIMIZER_STATES[optimizer]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown optimizer {optimizer!r}; expected one of {sorted(_OPTIMIZER_STATES)}"
        ) from None


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
) -> int:
    """Bytes of activations a transformer stack saves for backward.

    With the defaults this is Korthikanti et al. (2022), Eq. 1: ``s*b*h*(34 + 5*a*s/h)``
    bytes per layer, which assumes 16-bit values and 1-byte dropout masks. In values: each
    layer saves 16 ``sbh`` tensors (LayerNorm inputs 2, their outputs 2, Q, K, V, the output
    projection's input, and 8 in the 4h-wide MLP) and the ``a*s*s*b`` softmax output; dropout
    adds its output (``a*s*s*b`` values) and three 1-byte masks (``a*s*s*b + 2*s*b*h``).
    ``d_ff`` and ``n_kv_heads`` generalise the MLP width and grouped-query K/V; ``flash``
    drops the s^2 terms (a fused attention kernel recomputes the scores in backward);
    ``softmax_copies`` counts the ``a*s*s*b`` tensors an unfused softmax keeps (1 when fused).
    """
    for name, value in (("batch", batch), ("seq", seq), ("hidden", hidden),
                        ("n_layers", n_layers), ("n_heads", n_heads)):
        _check_positive_int(name, value)
    _check_nonneg("bytes_per_value", bytes_per_value)
    if hidden % n_heads:
        raise ValueError(f"hidden ({hidden}) must be divisible by n_heads ({n_heads})")
    d_ff = 4 * hidden if d_ff is None else d_ff
    n_kv_heads = n_heads if n_kv_heads is None else n_kv_heads
    sbh = seq * batch * hidden
    values = sbh * (4 + 2) + 2 * sbh * n_kv_heads / n_heads + 2 * seq * batch * d_ff
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
) -> dict[str, int]:
    """Training memory by part (bytes): weights, gradients, optimizer, activations, total.

    ``recipe="seed"`` is the course notes' rule: 4 + 8 + 4 + 8 bytes per parameter at fp32
    (weights, two Adam states, gradients, an activation allowance), all scaled by
    ``bytes_per_param(dtype) / 4``. ``recipe="mixed"`` is the accounting of ZeRO
    (Rajbhandari et al. 2019): 16-bit weights and gradients, plus an fp32 master copy and
    fp32 optimizer states (2 + 2 + 12 = 16 bytes/param for Adam); with ``dtype="fp32"`` there
    is no separate master copy. Its activations come from :func:`activation_memory` (16-bit
    values, Korthikanti et al. 2022) when the shapes are given, else they are 0;
    ``checkpointing=True`` keeps only each layer's input (``2*s*b*h`` bytes per layer).
    """
    _check_nonneg("n_params", n_params)
    width = bytes_per_param(dtype)
    n_states = _optimizer_states(optimizer)
    if recipe == "seed":
        scale = width / 4
        parts = {
            "weights": n_params * SEED_RULE["weights"] * scale,
            "gradients": n_params * SEED_RULE["gradients"] * scale,
            "optimizer": n_params * 4 * n_states * scale,
            "activations": n_params * SEED_RULE["activations"] * scale,
        }
    elif recipe == "mixed":
        master = 0 if dtype == "fp32" else 4
        parts = {
            "weights": n_params * width,
            "gradients": n_params * width,
            "optimizer": n_params * (master + 4 * n_states),
            "activations": 0,
        }
        shapes = (batch, seq, hidden, n_layers, n_heads)
        if all(v is not None for v in shapes):
            if checkpointing:
                for name, value in zip(("batch", "seq", "hidden", "n_layers"), shapes,
                                       strict=False):
                    _check_positive_int(name, value)
                parts["activations"] = 2 * seq * batch * hidden * n_layers
            else:
                parts["activations"] = activation_memory(*shapes, bytes_per_value=2)
        elif any(v is not None for v in shapes):
            raise ValueError("give all of batch, seq, hidden, n_layers, n_heads, or none")
    else:
        raise ValueError(f"unknown recipe {recipe!r}; expected 'seed' or 'mixed'")
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
    _check_nonneg("k", k)
    if stage not in (0, 1, 2, 3) or isinstance(stage, bool):
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
    factor = {"ddp": 2, "zero1": 2, "zero2": 2, "fsdp": 3, "zero3": 3}.get(strategy)
    if factor is None:
        raise ValueError(f"unknown strategy {strategy!r}; expected ddp, zero1-3 or fsdp")
    return round(factor * (n_devices - 1) / n_devices * n_params * bytes_per_value)
