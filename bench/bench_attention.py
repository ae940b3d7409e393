"""Attention kernel benchmark: time and peak memory per method and sequence length.

Methods, for one (batch, heads, n, d) fp32 problem on the CPU (or a GPU with --device cuda):
  standard  course_lib.attention.scaled_dot_product_attention (materialises the n x n matrix)
  tiled     course_lib.flash.flash_attention with the paper's block sizes for this machine's
            L2 cache (the CPU's stand-in for SRAM)
  sdpa      torch.nn.functional.scaled_dot_product_attention (a fused flash kernel)

Prints a table with each method's time and peak memory as ratios to standard attention and
writes bench/attention.json. Run: python bench/bench_attention.py [--lengths 256 512 ...].
Taught in book/04_attention.md, section "Speed, honestly".
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from course_lib import flash, measure
from course_lib.attention import scaled_dot_product_attention

HERE = Path(__file__).resolve().parent


def methods(block_q: int, block_k: int):
    return {
        "standard": lambda q, k, v: scaled_dot_product_attention(q, k, v)[0],
        "tiled": lambda q, k, v: flash.flash_attention(q, k, v, block_q=block_q,
                                                       block_k=block_k),
        "sdpa": lambda q, k, v: F.scaled_dot_product_attention(q, k, v),
    }


def run(lengths, d, heads, repeats, device, sram_bytes):
    block_q, block_k = flash.block_sizes(sram_bytes, d)
    rows = []
    for n in lengths:
        gen = torch.Generator().manual_seed(n)
        q, k, v = (torch.randn(1, heads, n, d, generator=gen).to(device) for _ in range(3))
        reference = None
        for name, fn in methods(block_q, block_k).items():
            out, peak = measure.measure_peak_memory(fn, q, k, v)
            if reference is None:
                reference = out
            error = (out - reference).abs().max().item()
            del out
            seconds = measure.benchmark(fn, q, k, v, repeats=repeats)
            rows.append({"method": name, "n": n, "seconds": seconds, "peak_bytes": int(peak),
                         "max_abs_error_vs_standard": error,
                         "gflops": flash.attention_flops(n, n, d) * heads / seconds / 1e9})
        del q, k, v, reference
    return rows, (block_q, block_k)


def print_table(rows, lengths):
    by = {(r["method"], r["n"]): r for r in rows}
    header = (f"{'n':>6} {'method':>9} {'time ms':>9} {'x faster':>9} {'peak MiB':>9} "
              f"{'x less mem':>10} {'GFLOP/s':>8} {'max err':>8}")
    print(header)
    print("-" * len(header))
    for n in lengths:
        base = by[("standard", n)]
        for name in ("standard", "tiled", "sdpa"):
            r = by[(name, n)]
            print(f"{n:>6} {name:>9} {r['seconds'] * 1e3:>9.2f} "
                  f"{base['seconds'] / r['seconds']:>9.2f} {r['peak_bytes'] / 2**20:>9.2f} "
                  f"{base['peak_bytes'] / max(r['peak_bytes'], 1):>10.1f} {r['gflops']:>8.1f} "
                  f"{r['max_abs_error_vs_standard']:>8.1e}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[256, 512, 1024, 2048, 4096])
    parser.add_argument("--d", type=int, default=64, help="head dimension")
    parser.add_argument("--heads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
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
    rows, blocks = run(args.lengths, args.d, args.heads, args.repeats, args.device, sram)
    print(f"attention benchmark: batch 1, heads {args.heads}, d {args.d}, fp32, "
          f"{args.device}, {torch.get_num_threads()} threads; tiled blocks "
          f"(B_r, B_c) = {blocks} from an SRAM stand-in of {sram // 2**10} KiB")
    print_table(rows, args.lengths)
    result = {
        "benchmark": "attention",
        "device": args.device,
        "machine": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "d": args.d, "heads": args.heads, "dtype": "fp32",
        "sram_bytes": sram, "block_q": blocks[0], "block_k": blocks[1],
        "wall_seconds": round(time.perf_counter() - start, 2),
        "rows": rows,
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
