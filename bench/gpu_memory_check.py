"""Hold course_lib.memory's estimator to what the CUDA allocator reports for a training step.

    python bench/gpu_memory_check.py [--out bench/gpu_memory_check.json]

Needs a CUDA GPU; without one it says so and exits 0. For a GPT a few hundred MB in size it
runs AdamW steps in fp32 and compares:

- the bytes the forward pass adds (``torch.cuda.memory_allocated`` after minus before) with
  the activations saved for backward (``SavedTensorMeter``) plus the logits it returns, and
  with the estimator ``gpt_activation_memory`` plus the logits;
- ``torch.cuda.max_memory_allocated`` over a whole step with the estimate
  weights + gradients + Adam states + activations + logits.

Taught in book/02_memory.md (section "On a GPU").
"""

from __future__ import annotations

import argparse
import json
import sys

import torch

from course_lib import memory as M
from course_lib.models import GPT, GPTConfig


def check(batch: int = 8, seq: int = 512) -> dict:
    dev = torch.device("cuda")
    cfg = GPTConfig(vocab_size=8192, block_size=seq, n_layer=8, n_head=8, d_model=512)
    torch.manual_seed(0)
    model = GPT(cfg).to(dev).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    idx = torch.randint(0, cfg.vocab_size, (batch, seq), device=dev)
    n = M.count_params(model)
    logits_bytes = batch * seq * cfg.vocab_size * 4
    est_acts = M.gpt_activation_memory(cfg, batch, seq, bytes_per_value=4)
    rows = []
    for step in range(3):  # step 0 creates the Adam states; later steps are steady state
        opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        with M.SavedTensorMeter(exclude=list(model.parameters())) as meter:
            logits, loss = model(idx, idx)
        torch.cuda.synchronize()
        forward_delta = torch.cuda.memory_allocated() - before
        loss.backward()
        del logits, loss
        opt.step()
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated()
        estimate = 4 * n + 4 * n + 8 * n + est_acts + logits_bytes
        rows.append({
            "step": step, "forward_delta": forward_delta, "saved_tensors": meter.bytes,
            "estimated_activations": est_acts, "logits": logits_bytes,
            "peak": peak, "estimated_peak": estimate,
            "forward_ratio": forward_delta / (est_acts + logits_bytes),
            "peak_ratio": peak / estimate,
        })
    return {"device": torch.cuda.get_device_name(), "torch": torch.__version__,
            "params": n, "batch": batch, "seq": seq, "steps": rows}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="write the result as JSON here")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=512)
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("gpu_memory_check: no CUDA device here; nothing to compare (this is not an "
              "error). Run it on a machine with an NVIDIA GPU.")
        return 0
    result = check(args.batch, args.seq)
    for r in result["steps"]:
        print(f"step {r['step']}: forward added {r['forward_delta'] / 1e6:.1f} MB "
              f"(saved tensors {r['saved_tensors'] / 1e6:.1f} MB + logits "
              f"{r['logits'] / 1e6:.1f} MB; estimator {r['estimated_activations'] / 1e6:.1f} MB"
              f" + logits), ratio {r['forward_ratio']:.3f}; peak "
              f"{r['peak'] / 1e6:.1f} MB vs estimate {r['estimated_peak'] / 1e6:.1f} MB, "
              f"ratio {r['peak_ratio']:.3f}")
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
