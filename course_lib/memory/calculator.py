"""What fits where, and the command-line memory calculator (``python -m course_lib.memory``).

Taught in book/02_memory.md.
"""

from __future__ import annotations

import argparse
import math

from .count import LLAMA_CONFIGS, LlamaConfig, llama_param_count
from .estimate import (
    _BYTES_PER_PARAM,
    _OPTIMIZER_STATES,
    GB,
    MAX_SIZE,
    GiB,
    _check_choice,
    _check_positive_int,
    _check_real,
    kv_cache_bytes,
    model_memory,
    training_memory,
)


def lora_param_count(c: LlamaConfig, r: int = 16) -> int:
    """LoRA adapters of rank ``r`` on every linear layer of every block (A: r x in, B: out x r)."""
    if not isinstance(c, LlamaConfig):
        raise TypeError(f"c must be a LlamaConfig, got {type(c).__name__}")
    _check_positive_int("r", r)
    d, kv = c.d_model, (c.n_kv_head or c.n_head) * c.head_dim
    shapes = [(d, d), (d, kv), (d, kv), (d, d), (d, c.d_ff), (d, c.d_ff), (c.d_ff, d)]
    return c.n_layer * sum(r * (i + o) for i, o in shapes)


# NF4 with double quantization: 4 bits + 0.127 bits of block constants per weight (QLoRA).
NF4_BYTES_PER_PARAM = (4 + 0.127) / 8


def fits_table(configs=("llama-2-7b", "llama-2-13b", "llama-2-70b"), cards_gib=(24, 48, 80),
               seq: int = 4096, lora_rank: int = 16, overhead: float = 0.10) -> list[dict]:
    """Memory each config needs per scenario, and which cards (GiB) hold it on one device.

    Inference: weights + fp16 KV cache of ``seq`` tokens (batch 1). Full fine-tuning: mixed
    precision AdamW (16 bytes/param) + activations with full checkpointing (``2*s*h*L``).
    LoRA: bf16 frozen weights + adapters trained with mixed AdamW + the same activations.
    QLoRA: NF4 double-quantized weights instead. ``overhead`` is added on top of everything
    (allocator fragmentation, CUDA context, workspaces).
    """
    configs = [configs] if isinstance(configs, (str, LlamaConfig)) else list(configs)
    if not configs:
        raise ValueError("configs is empty")
    cards_gib = list(cards_gib)
    for name in configs:
        if isinstance(name, str):
            _check_choice("configs", name, LLAMA_CONFIGS)
        elif not isinstance(name, LlamaConfig):
            raise TypeError(f"configs: each must be a name or a LlamaConfig, got {name!r}")
    for g in cards_gib:
        _check_real("cards_gib", g, high=1e6, low_open=True)
    _check_positive_int("seq", seq)
    _check_positive_int("lora_rank", lora_rank)
    _check_real("overhead", overhead, high=10)
    rows = []
    for name in configs:
        c = LLAMA_CONFIGS[name] if isinstance(name, str) else name
        n = llama_param_count(c)
        kv = kv_cache_bytes(1, seq, c.n_layer, c.n_kv_head or c.n_head, c.head_dim, "fp16")
        acts = 2 * seq * c.d_model * c.n_layer
        n_lora = lora_param_count(c, lora_rank)
        needs = {
            "inference fp16": model_memory(n, "fp16") + kv,
            "inference int8": model_memory(n, "int8") + kv,
            "inference int4": model_memory(n, "int4") + kv,
            "full fine-tune": training_memory(n, "bf16", "adamw", "mixed")["total"] + acts,
            "LoRA": model_memory(n, "bf16") + 16 * n_lora + acts,
            "QLoRA": round(n * NF4_BYTES_PER_PARAM) + 16 * n_lora + acts,
        }
        for scenario, need in needs.items():
            need = round(need * (1 + overhead))
            row = {"model": name if isinstance(name, str) else "custom", "params": n,
                   "scenario": scenario, "bytes": need}
            for g in cards_gib:
                row[f"{g} GiB"] = need <= g * GiB
            rows.append(row)
    return rows


def breakdown_table(parts: dict[str, int], unit: str = "GB") -> str:
    """A plain-text table of a {part: bytes} dict, for terminals and notebooks."""
    divisors = {"GB": GB, "GiB": GiB, "MB": 10**6}
    _check_choice("unit", unit, divisors)
    if not isinstance(parts, dict) or not parts:
        raise ValueError(f"parts must be a non-empty dict of bytes, got {parts!r}")
    for key, value in parts.items():
        _check_real(f"parts[{key!r}]", value, high=float(MAX_SIZE) ** 2)
    div = divisors[unit]
    width = max(len(k) for k in parts)
    lines = [f"{'part':<{width}}  {unit:>10}", "-" * (width + 12)]
    for key, value in parts.items():
        if key == "total":
            lines.append("-" * (width + 12))
        lines.append(f"{key:<{width}}  {value / div:>10.2f}")
    return "\n".join(lines)


def _parse_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    if value > MAX_SIZE:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_SIZE:.0e}, got {text!r}")
    return value


def _parse_int(text: str) -> int:
    value = _parse_float(text)
    if value != int(value):
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}")
    return int(value)


_MLP_NAMES = {"gelu": "GELU", "swiglu": "SwiGLU"}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m course_lib.memory",
        description="Estimate training (or inference) memory of a transformer. GB = 1e9 bytes.",
    )
    parser.add_argument("--params", type=_parse_float, required=True, help="e.g. 7e9")
    parser.add_argument("--dtype", default="bf16", choices=sorted(_BYTES_PER_PARAM))
    parser.add_argument("--optimizer", default="adam", choices=sorted(_OPTIMIZER_STATES))
    parser.add_argument("--recipe", default="mixed", choices=["mixed", "seed"])
    parser.add_argument("--seq", type=_parse_int, help="sequence length (for activations)")
    parser.add_argument("--batch", type=_parse_int, default=1)
    parser.add_argument("--hidden", type=_parse_int, help="d_model (default: Llama-like guess)")
    parser.add_argument("--layers", type=_parse_int, help="number of layers")
    parser.add_argument("--heads", type=_parse_int, help="attention heads")
    parser.add_argument("--mlp", choices=["gelu", "swiglu"], default="gelu",
                        help="MLP kind: GPT's 4h GELU (default) or Llama's SwiGLU")
    parser.add_argument("--d-ff", type=_parse_int, help="MLP width (default 4 x hidden)")
    parser.add_argument("--no-dropout", action="store_true",
                        help="no dropout (Llama): no dropout masks or outputs are kept")
    parser.add_argument("--checkpointing", action="store_true", help="full recomputation")
    parser.add_argument("--inference", action="store_true",
                        help="weights + KV cache (needs --seq) instead of training")
    args = parser.parse_args(argv)
    shape_flags = {"--hidden": args.hidden, "--layers": args.layers, "--heads": args.heads,
                   "--d-ff": args.d_ff}
    arch_flags = {"--checkpointing": args.checkpointing, "--no-dropout": args.no_dropout,
                  "--mlp swiglu": args.mlp != "gelu"}
    if args.seq is None:
        # without a sequence there are no activations and no cache: a shape would be ignored
        ignored = [k for k, v in {**shape_flags, **arch_flags}.items() if v]
        if ignored:
            parser.error(f"{', '.join(ignored)}: only used with --seq (activations depend on "
                         "it), and --seq is not given")
        if args.inference:
            parser.error("--inference needs --seq for the KV cache")
    elif args.recipe == "seed" and not args.inference:
        parser.error("--recipe seed has a fixed activation allowance (8 bytes/param at fp32): "
                     "--seq and the shape need --recipe mixed")
    elif args.inference and any(arch_flags.values()):
        parser.error("--checkpointing, --no-dropout and --mlp are about training activations, "
                     "not --inference")
    hidden, layers, heads = args.hidden, args.layers, args.heads
    if args.seq is not None and None in (hidden, layers, heads):
        # Llama-like shape for the size: 12*L*h^2 params with h = 128*L (7B: h=4096, L=32).
        guess_layers = max(1, round((args.params / (12 * 128**2)) ** (1 / 3)))
        layers = layers or guess_layers
        hidden = hidden or 128 * layers
        heads = heads or max(1, hidden // 128)
        print(f"(shape not given: assuming hidden={hidden}, layers={layers}, heads={heads})")
    try:
        parts = _cli_parts(args, hidden, layers, heads)
    except (ValueError, TypeError) as err:
        parser.error(str(err))
    if args.inference:
        what = "inference: weights + fp16 KV cache"
    else:
        what = f"{args.optimizer}, recipe {args.recipe}"
        if args.seq is not None:
            what += (", activations: full recomputation (2*s*b*h*L bytes)" if args.checkpointing
                     else f", activations: {_MLP_NAMES[args.mlp]} MLP, "
                          f"{'no dropout' if args.no_dropout else 'dropout'}, 16-bit values")
    print(f"{args.params:.3g} params, {args.dtype}, {what}")
    print(breakdown_table(parts))
    return 0


def _cli_parts(args, hidden, layers, heads) -> dict[str, int]:
    if args.inference:
        parts = {"weights": model_memory(args.params, args.dtype),
                 "kv cache (fp16)": kv_cache_bytes(args.batch, args.seq, layers, heads,
                                                   hidden // heads)}
        parts["total"] = sum(parts.values())
        return parts
    shape = {}
    if args.seq is not None:
        shape = dict(batch=args.batch, seq=args.seq, hidden=hidden, n_layers=layers,
                     n_heads=heads, checkpointing=args.checkpointing)
        if args.no_dropout:
            shape["dropout"] = False
        if args.mlp != "gelu":
            shape["mlp"] = args.mlp
        if args.d_ff is not None:
            shape["d_ff"] = args.d_ff
    return training_memory(args.params, args.dtype, args.optimizer, args.recipe, **shape)
