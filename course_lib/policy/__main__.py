"""``python -m course_lib.policy --out course_lib/weights`` trains the runs of ``RUNS`` (the
reader, about 22 minutes on two cores, and the agent, about 22 on one) and writes each
checkpoint with its record."""

from __future__ import annotations

import argparse
import sys
import time

import torch

from .model import RUNS, save_policy, train_policy


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib.policy",
                                     description="Fine-tune chapter 7's reader and agent.")
    parser.add_argument("--run", choices=sorted(RUNS), nargs="*", help="default: both")
    parser.add_argument("--out", default="weights", help="output folder (default ./weights)")
    parser.add_argument("--steps", type=int, help="default: the run's")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    args = parser.parse_args(argv)
    if args.steps is not None and args.steps < 1:
        parser.error("--steps must be >= 1")
    if args.threads < 1:
        parser.error("--threads must be >= 1")
    torch.set_num_threads(args.threads)
    for name in args.run or sorted(RUNS):
        start = time.perf_counter()
        model, history = train_policy(name, args.steps, progress=True, device=args.device)
        record = save_policy(model, history, name, args.out, time.perf_counter() - start,
                             args.device)
        print(f"{name}: final loss {sum(record['loss'][-20:]) / 20:.4f}; "
              f"sha256 {record['sha256']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
