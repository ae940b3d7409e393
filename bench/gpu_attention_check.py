"""GPU check for book/04_attention.md: standard attention vs torch SDPA (flash backend) vs the
course's tiled flash_attention, forward pass, up to n = 16384.

Run on a machine with CUDA:  python bench/gpu_attention_check.py
Without CUDA it prints a message and exits with status 0 (nothing to measure).
Writes bench/gpu_attention.json (or --out) and prints time and peak memory per method and
length, with ratios to standard attention. The course's version launches a handful of small
kernels per tile, so expect it to be slower than the fused flash kernel; its memory is the point.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from course_lib import flash, measure
from course_lib.attention import causal_mask, scaled_dot_product_attention

HERE = Path(__file__).resolve().parent


def cuda_time(fn, inputs, repeats: int) -> float:
    """Best-of-``repeats`` seconds of ``fn(*inputs)``, timed with CUDA events after a warm-up."""
    fn(*inputs)
    best = float("inf")
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn(*inputs)
        end.record()
        torch.cuda.synchronize()
        best = min(best, start.elapsed_time(end) / 1e3)
    return best


def make_methods(causal: bool, block_q: int, block_k: int):
    from torch.nn.attention import SDPBackend, sdpa_kernel

    def standard(q, k, v):
        mask = causal_mask(q.shape[-2], device=q.device) if causal else None
        return scaled_dot_product_attention(q, k, v, mask=mask)[0]

    def sdpa_flash(q, k, v):
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            return F.scaled_dot_product_attention(q, k, v, is_causal=causal)

    def sdpa_math(q, k, v):
        with sdpa_kernel(SDPBackend.MATH):
            return F.scaled_dot_product_attention(q, k, v, is_causal=causal)

    def tiled(q, k, v):
        return flash.flash_attention(q, k, v, causal=causal, block_q=block_q, block_k=block_k)

    return {"standard": standard, "sdpa_math": sdpa_math, "sdpa_flash": sdpa_flash,
            "course_tiled": tiled}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+",
                        default=[1024, 2048, 4096, 8192, 16384])
    parser.add_argument("--heads", type=int, default=16)
    parser.add_argument("--d", type=int, default=64)
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16"])
    parser.add_argument("--causal", action="store_true")
    parser.add_argument("--block-q", type=int, default=256)
    parser.add_argument("--block-k", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=HERE / "gpu_attention.json")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("gpu_attention_check: no CUDA device found; nothing to measure (this is fine on "
              "a CPU-only machine). Run it where torch.cuda.is_available() is True.")
        return 0

    device, dtype = torch.device("cuda"), getattr(torch, args.dtype)
    methods = make_methods(args.causal, args.block_q, args.block_k)
    rows, start = [], time.perf_counter()
    print(f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}, {args.dtype}, "
          f"batch 1, heads {args.heads}, d {args.d}, causal {args.causal}")
    header = (f"{'n':>6} {'method':>13} {'ms':>9} {'x vs std':>9} {'peak MiB':>10} "
              f"{'mem x less':>10} {'TFLOP/s':>8} {'max err':>8}")
    print(header + "\n" + "-" * len(header))
    for n in args.lengths:
        gen = torch.Generator(device=device).manual_seed(n)
        q, k, v = (torch.randn(1, args.heads, n, args.d, generator=gen, device=device,
                               dtype=dtype) for _ in range(3))
        reference, base = None, None
        for name, fn in methods.items():
            try:
                out, peak = measure.measure_peak_memory(fn, q, k, v)
                repeats = 1 if name == "course_tiled" and n >= 8192 else args.repeats
                seconds = cuda_time(fn, (q, k, v), repeats)
            except torch.cuda.OutOfMemoryError:
                torch.cuda.empty_cache()
                rows.append({"n": n, "method": name, "status": "out of memory"})
                print(f"{n:>6} {name:>13}  out of memory")
                continue
            if reference is None:
                reference = out.float()
            error = (out.float() - reference).abs().max().item()
            del out
            flops = flash.attention_flops(n, n, args.d, causal=args.causal) * args.heads
            row = {"n": n, "method": name, "seconds": seconds, "peak_bytes": int(peak),
                   "tflops": flops / seconds / 1e12, "max_abs_error_vs_first": error}
            if name == "standard":
                base = row
            rows.append(row)
            speed = base["seconds"] / seconds if base else float("nan")
            mem = base["peak_bytes"] / max(peak, 1) if base else float("nan")
            print(f"{n:>6} {name:>13} {seconds * 1e3:>9.2f} {speed:>9.2f} "
                  f"{peak / 2**20:>10.1f} {mem:>10.1f} {row['tflops']:>8.1f} {error:>8.1e}")
        del q, k, v, reference
        torch.cuda.empty_cache()
    result = {"benchmark": "gpu_attention", "device": torch.cuda.get_device_name(device),
              "torch": torch.__version__, "dtype": args.dtype, "heads": args.heads, "d": args.d,
              "causal": args.causal, "block_q": args.block_q, "block_k": args.block_k,
              "wall_seconds": round(time.perf_counter() - start, 1), "rows": rows}
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
