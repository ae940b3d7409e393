"""Attention kernel benchmark: time and peak memory per method and sequence length.

Methods, for one (batch, heads, n, d) fp32 problem on the CPU (or a GPU with --device cuda):
  standard      course_lib.attention.scaled_dot_product_attention (materialises n x n)
  tiled BrxBc   course_lib.flash.flash_attention, once with the paper's tile sizes for this
                machine's L2 cache (the CPU's stand-in for SRAM; "rule") and once per
                --tiles entry (default 128x128: small tiles, so the online softmax runs
                over several key tiles even where the rule's tiles hold the whole sequence)
  sdpa          torch.nn.functional.scaled_dot_product_attention (a fused flash kernel)

Prints a table with each method's time and peak memory as ratios to standard attention, and
how many key tiles each tiled run used, and writes bench/attention.json.
Run: python bench/bench_attention.py [--lengths 256 512 ...] [--tiles 128x128 64x64].
Taught in book/04_attention.md, sections "Memory" and "Speed, honestly".
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from course_lib import flash, measure
from course_lib.attention import scaled_dot_product_attention

HERE = Path(__file__).resolve().parent


def parse_tiles(text: str) -> tuple[int, int]:
    """'128x128' -> (128, 128): query rows x key columns of one tile."""
    try:
        block_q, block_k = (int(part) for part in text.lower().split("x"))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"tiles must look like 128x128, got {text!r}") from err
    if block_q < 1 or block_k < 1:
        raise argparse.ArgumentTypeError(f"tile sizes must be positive, got {text!r}")
    return block_q, block_k


def methods(tiles: dict[str, tuple[int, int]]):
    def tiled(block_q, block_k):
        return lambda q, k, v: flash.flash_attention(q, k, v, block_q=block_q, block_k=block_k)

    return {
        "standard": lambda q, k, v: scaled_dot_product_attention(q, k, v)[0],
        **{name: tiled(*blocks) for name, blocks in tiles.items()},
        "sdpa": lambda q, k, v: F.scaled_dot_product_attention(q, k, v),
    }


def run(lengths, d, heads, repeats, device, sram_bytes, extra_tiles):
    rule = flash.block_sizes(sram_bytes, d)
    tiles = {f"tiled {rule[0]}x{rule[1]} (rule)": rule}
    tiles.update({f"tiled {bq}x{bk}": (bq, bk) for bq, bk in extra_tiles})
    rows = []
    for n in lengths:
        gen = torch.Generator().manual_seed(n)
        q, k, v = (torch.randn(1, heads, n, d, generator=gen).to(device) for _ in range(3))
        reference = None
        for name, fn in methods(tiles).items():
            out, peak = measure.measure_peak_memory(fn, q, k, v)
            if reference is None:
                reference = out
            error = (out - reference).abs().max().item()
            del out
            seconds = measure.benchmark(fn, q, k, v, repeats=repeats)
            key_tiles = -(-n // tiles[name][1]) if name in tiles else None
            rows.append({"method": name, "n": n, "seconds": seconds, "peak_bytes": int(peak),
                         "key_tiles": key_tiles, "max_abs_error_vs_standard": error,
                         "gflops": flash.attention_flops(n, n, d) * heads / seconds / 1e9})
        del q, k, v, reference
    return rows, tiles


def print_table(rows, lengths):
    by = {(r["method"], r["n"]): r for r in rows}
    names = list(dict.fromkeys(r["method"] for r in rows))
    width = max(len(name) for name in names)
    header = (f"{'n':>6} {'method':>{width}} {'key tiles':>9} {'time ms':>9} {'x faster':>9} "
              f"{'peak MiB':>9} {'x less mem':>10} {'GFLOP/s':>8} {'max err':>8}")
    print(header)
    print("-" * len(header))
    for n in lengths:
        base = by[("standard", n)]
        for name in names:
            r = by[(name, n)]
            print(f"{n:>6} {name:>{width}} {r['key_tiles'] or '':>9} {r['seconds'] * 1e3:>9.2f} "
                  f"{base['seconds'] / r['seconds']:>9.2f} {r['peak_bytes'] / 2**20:>9.2f} "
                  f"{base['peak_bytes'] / max(r['peak_bytes'], 1):>10.1f} {r['gflops']:>8.1f} "
                  f"{r['max_abs_error_vs_standard']:>8.1e}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[256, 512, 1024, 2048, 4096])
    parser.add_argument("--d", type=int, default=64, help="head dimension")
    parser.add_argument("--heads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tiles", type=parse_tiles, nargs="*", default=[(128, 128)],
                        help="extra tile sizes for the tiled kernel, e.g. 128x128 64x64")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1: one core, stable on a shared machine)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--out", type=Path, default=HERE / "attention.json")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("bench_attention: --device cuda asked for but no CUDA device; nothing run")
        return 0
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    sram = measure.cpu_cache_bytes(2) if args.device == "cpu" else 192 * 2**10
    start = time.perf_counter()
    rows, tiles = run(args.lengths, args.d, args.heads, args.repeats, args.device, sram,
                      args.tiles)
    print(f"attention benchmark: batch 1, heads {args.heads}, d {args.d}, fp32, "
          f"{args.device}, {torch.get_num_threads()} threads; the rule's tiles come from an "
          f"SRAM stand-in of {sram // 2**10} KiB")
    print_table(rows, args.lengths)
    result = {
        "benchmark": "attention",
        "device": args.device,
        "machine": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "d": args.d, "heads": args.heads, "dtype": "fp32",
        "sram_bytes": sram, "tiles": {name: list(blocks) for name, blocks in tiles.items()},
        "wall_seconds": round(time.perf_counter() - start, 2),
        "rows": rows,
    }
    tmp = args.out.with_suffix(args.out.suffix + ".tmp")  # atomic: never a half-written file
    tmp.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
