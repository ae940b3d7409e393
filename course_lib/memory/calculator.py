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
    GiB,
    kv_cache_bytes,
    model_memory,
    training_memory,
)


def lora_param_count(c: LlamaConfig, r: int = 16) -> int:
    """LoRA adapters of rank ``r`` on every linear layer of every block (A: r x in, B: out x r)."""
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
    div = {"GB": GB, "GiB": GiB, "MB": 10**6}[unit]
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
    return value


def _parse_int(text: str) -> int:
    value = _parse_float(text)
    if value != int(value):
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}")
    return int(value)


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
    parser.add_argument("--checkpointing", action="store_true", help="full recomputation")
    parser.add_argument("--inference", action="store_true",
                        help="weights + KV cache (needs --seq) instead of training")
    args = parser.parse_args(argv)
    hidden, layers, heads = args.hidden, args.layers, args.heads
    if args.seq is not None and None in (hidden, layers, heads):
        # Llama-like shape for the size: 12*L*h^2 params with h = 128*L (7B: h=4096, L=32).
        guess_layers = max(1, round((args.params / (12 * 128**2)) ** (1 / 3)))
        layers = layers or guess_layers
        hidden = hidden or 128 * layers
        heads = heads or max(1, hidden // 128)
        print(f"(shape not given: assuming hidden={hidden}, layers={layers}, heads={heads})")
    if args.inference and args.seq is None:
        parser.error("--inference needs --seq for the KV cache")
    try:
        parts = _cli_parts(args, hidden, layers, heads)
    except ValueError as err:
        parser.error(str(err))
    print(f"{args.params:.3g} params, {args.dtype}, "
          f"{'inference' if args.inference else args.optimizer + ', recipe ' + args.recipe}")
    print(breakdown_table(parts))
    return 0


def _cli_parts(args, hidden, layers, heads) -> dict[str, int]:
    if args.inference:
        parts = {"weights": model_memory(args.params, args.dtype),
                 "kv cache (fp16)": kv_cache_bytes(args.batch, args.seq, layers, heads,
                                                   hidden // heads)}
        parts["total"] = sum(parts.values())
    else:
        shape = {}
        if args.seq is not None and args.recipe == "mixed":
            shape = dict(batch=args.batch, seq=args.seq, hidden=hidden, n_layers=layers,
                         n_heads=heads, checkpointing=args.checkpointing)
        parts = training_memory(args.params, args.dtype, args.optimizer, args.recipe, **shape)
    return parts
