"""Data parallelism for real: DDP and FSDP (FSDP2 ``fully_shard``) on ``torch.distributed``.

Taught in book/02_memory.md. On a laptop the ranks are CPU processes talking over the gloo
backend on the loopback interface; on a cluster the same code runs under ``torchrun``::

    torchrun --nproc_per_node 2 -m course_lib.distributed --strategy fsdp --out /tmp/run

Every rank trains the same model on its slice of each global batch and writes what it holds
(parameter and optimizer bytes), its losses and a hash of the final weights to ``out`` as
JSON; rank 0 also writes the final weights as safetensors. Nothing is pickled: the parent
process reads those files back (:func:`run_distributed`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import socket
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file

from .memory import optimizer_state_bytes, tensor_bytes

STRATEGIES = ("single", "ddp", "fsdp")

OPTIMIZERS = {"adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}


@dataclass
class Job:
    """What every rank trains: the model (a shipped name or a GPTConfig dict) and the batches."""

    strategy: str = "ddp"
    world_size: int = 2
    model: str | dict = field(default_factory=lambda: {
        "vocab_size": 64, "block_size": 16, "n_layer": 2, "n_head": 2, "d_model": 32})
    steps: int = 3
    batch_size: int = 8          # global batch; each rank takes batch_size / world_size rows
    block_size: int = 16
    lr: float = 1e-3
    seed: int = 0
    optimizer: str = "adamw"     # "adamw", or "sgd" (plain steps: lr times the gradient)

    def __post_init__(self):
        if self.strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {self.strategy!r}; expected one of {STRATEGIES}")
        if not isinstance(self.optimizer, str) or self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; expected one of "
                             f"{tuple(OPTIMIZERS)}")
        for name in ("world_size", "steps", "batch_size", "block_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.batch_size % self.world_size:
            raise ValueError(f"batch_size={self.batch_size} must be divisible by "
                             f"world_size={self.world_size}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")


# Who holds what under each data-parallel strategy (ZeRO paper, Fig. 1; Rajbhandari et al.
# 2019), and what crosses the wire each step. "full": every device holds all of it; "shard":
# device i holds only slice i of N.
HOLDINGS = {
    "DDP": {"weights": "full", "gradients": "full", "optimizer": "full"},
    "ZeRO-1": {"weights": "full", "gradients": "full", "optimizer": "shard"},
    "ZeRO-2": {"weights": "full", "gradients": "shard", "optimizer": "shard"},
    "ZeRO-3 / FSDP": {"weights": "shard", "gradients": "shard", "optimizer": "shard"},
}
TRAFFIC = {
    "DDP": "all-reduce the gradients (2Ψ)",
    "ZeRO-1": "reduce-scatter gradients, all-gather updated weights (2Ψ)",
    "ZeRO-2": "reduce-scatter gradients, all-gather updated weights (2Ψ)",
    "ZeRO-3 / FSDP": "all-gather weights in forward and backward, reduce-scatter grads (3Ψ)",
}


def holdings(strategy: str, n_devices: int) -> dict[str, list[list[int]]]:
    """For each part of the model states, the slices (0..N-1) each device stores.

    ``holdings("DDP", 2)["optimizer"] == [[0, 1], [0, 1]]`` (both hold everything);
    ``holdings("ZeRO-3 / FSDP", 2)["weights"] == [[0], [1]]``. Taught in book/02_memory.md.
    """
    if strategy not in HOLDINGS:
        raise ValueError(f"unknown strategy {strategy!r}; expected one of {list(HOLDINGS)}")
    if isinstance(n_devices, bool) or not isinstance(n_devices, int) or not 1 <= n_devices <= 64:
        raise ValueError(f"n_devices must be an integer in 1..64, got {n_devices!r}")
    every = list(range(n_devices))
    return {part: [every if how == "full" else [d] for d in every]
            for part, how in HOLDINGS[strategy].items()}


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_model(job: Job) -> torch.nn.Module:
    """The same initial model on every rank: a shipped checkpoint or a seeded GPT."""
    from .models import GPT, GPTConfig, load_pretrained

    torch.manual_seed(job.seed)
    model = load_pretrained(job.model) if isinstance(job.model, str) else GPT(
        GPTConfig(**job.model))
    return model.train()


def make_batches(job: Job, tokens: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The global batches of every step, identical on every rank (one seeded generator)."""
    with warnings.catch_warnings():  # tqdm.auto warns in kernels without ipywidgets
        warnings.simplefilter("ignore")
        from .train import get_batch

    gen = torch.Generator().manual_seed(job.seed)
    return [get_batch(tokens, job.batch_size, job.block_size, gen) for _ in range(job.steps)]


def random_tokens(job: Job, n: int = 4096) -> torch.Tensor:
    """Uniformly random token ids for the job's vocabulary (enough to test the machinery)."""
    from .models import GPTConfig

    vocab_size = (GPTConfig(**job.model).vocab_size if isinstance(job.model, dict)
                  else build_model(job).config.vocab_size)
    return torch.randint(0, vocab_size, (n,), generator=torch.Generator().manual_seed(job.seed))


def weights_digest(state: dict[str, torch.Tensor]) -> str:
    """sha256 over the raw bytes of every tensor, in name order: equal iff bit-identical."""
    h = hashlib.sha256()
    for name in sorted(state):
        h.update(name.encode())
        h.update(state[name].detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _full_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Unsharded weights (FSDP's DTensors are all-gathered: every rank must call this)."""
    state = {}
    for name, p in model.named_parameters():
        t = p.full_tensor() if hasattr(p, "full_tensor") else p
        state[name.removeprefix("module.")] = t.detach().clone()
    return state


def _local_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """What this rank itself stores: FSDP's local shard of each parameter, DDP's full copy."""
    state = {}
    for name, p in model.named_parameters():
        t = p.to_local() if hasattr(p, "to_local") else p
        state[name.removeprefix("module.")] = t.detach().clone().contiguous()
    return state


def train_rank(job: Job, tokens: torch.Tensor, rank: int = 0) -> tuple[dict, dict]:
    """Train on this rank's slice of every global batch; returns (report, final weights).

    ``strategy="single"`` is the one-process reference on the whole batch. With DDP each rank
    keeps a full replica and gradients are all-reduced (averaged) in backward; with FSDP each
    block's parameters, gradients and Adam states are sharded over the ranks and a block's
    weights are all-gathered just before it runs.
    """
    model = build_model(job)
    full_bytes = tensor_bytes(model.parameters())
    if job.strategy == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(model)
    elif job.strategy == "fsdp":
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        mesh = init_device_mesh("cpu", (job.world_size,))
        for block in model.blocks:
            fully_shard(block, mesh=mesh)
        fully_shard(model, mesh=mesh)
    opt = OPTIMIZERS[job.optimizer](model.parameters(), lr=job.lr)
    world = 1 if job.strategy == "single" else job.world_size
    rows = job.batch_size // world
    losses = []
    start = time.perf_counter()
    for x, y in make_batches(job, tokens):
        x, y = x[rank * rows:(rank + 1) * rows], y[rank * rows:(rank + 1) * rows]
        _, loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss = loss.detach()
        if world > 1:  # the global loss: mean of the ranks' means (equal slices)
            dist.all_reduce(loss)
            loss /= world
        losses.append(loss.item())
    local = _local_state(model)
    state = _full_state(model)
    report = {
        "rank": rank, "strategy": job.strategy, "world_size": world, "losses": losses,
        "param_bytes": tensor_bytes(model.parameters()),
        "optimizer_bytes": optimizer_state_bytes(opt),
        "full_param_bytes": full_bytes,
        "weights_sha256": weights_digest(state),
        "local_sha256": weights_digest(local),  # differs across FSDP ranks: other shards
        "seconds": round(time.perf_counter() - start, 3),
    }
    report["_local_state"] = local  # written to its own file by _write, not into the JSON
    return report, state


def rank_loop_source() -> str:
    """The lines of :func:`train_rank` a chapter shows: from building the model to recording
    the loss (the wrapping for DDP or FSDP, the optimizer and the training loop), headed by
    file and line as ``course_lib.notebook.source`` gives them."""
    from .notebook import source

    body = source(train_rank).splitlines()   # body[0] is the header, body[i] line i
    first = next(i for i, line in enumerate(body) if "model = build_model" in line)
    last = next(i for i, line in enumerate(body) if "losses.append" in line)
    return source(train_rank, lines=(first, last))


def _atomic_save(tensors: dict, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp))
    os.replace(tmp, path)


def _write(out_dir: Path, prefix: str, report: dict, state: dict | None) -> None:
    report = dict(report)
    local = report.pop("_local_state", None)
    if local is not None:
        _atomic_save(local, out_dir / f"{prefix}rank{report['rank']}_local.safetensors")
    tmp = out_dir / f"{prefix}rank{report['rank']}.json.tmp"
    tmp.write_text(json.dumps(report, indent=1))
    os.replace(tmp, out_dir / f"{prefix}rank{report['rank']}.json")
    if state is not None:
        _atomic_save(state, out_dir / f"{prefix}final.safetensors")


def _worker(rank: int, world_size: int, port: int, out_dir: str) -> None:
    """Entry point of one spawned rank (importable, so it works from a notebook too).

    Runs every job in ``out_dir/jobs.json`` in turn on one process group, so that a notebook
    pays the start-up of the processes (importing torch) once for DDP and FSDP together.
    """
    torch.set_num_threads(1)
    out = Path(out_dir)
    jobs = [Job(**j) for j in json.loads((out / "jobs.json").read_text())]
    tokens = load_file(str(out / "tokens.safetensors"))["tokens"]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world_size, timeout=timedelta(seconds=60))
    try:
        for j, job in enumerate(jobs):
            report, state = train_rank(job, tokens, rank)
            _write(out, f"job{j}_", report, state if rank == 0 else None)
            del state
            dist.barrier()
    finally:
        dist.destroy_process_group()


@dataclass
class RunResult:
    ranks: list[dict]                      # one report per rank, in rank order
    final_state: dict[str, torch.Tensor]   # rank 0's final (unsharded) weights
    # what each rank itself stored at the end (FSDP: its shards; DDP and single: everything)
    local_states: list[dict[str, torch.Tensor]] = field(default_factory=list)


def run_distributed(job: Job | list[Job], tokens: torch.Tensor | None = None,
                    start_method: str = "spawn"):
    """Run ``job`` on ``job.world_size`` local CPU processes (gloo), or in-process if single.

    Given a list of jobs (same ``world_size``) it runs them one after the other in the same
    processes and returns a list of :class:`RunResult`. ``start_method="spawn"`` starts fresh
    interpreters (each imports torch again, ~0.35 GB resident apiece); ``"fork"`` (Linux, and
    only while the parent has not touched CUDA) starts copies of this process that share its
    already-imported modules, which roughly halves the memory the run really uses.
    """
    if start_method not in ("spawn", "fork"):
        raise ValueError(f"start_method must be 'spawn' or 'fork', got {start_method!r}")
    jobs = job if isinstance(job, list) else [job]
    if not jobs or not all(isinstance(j, Job) for j in jobs):
        raise ValueError("run_distributed needs a Job or a non-empty list of Jobs")
    tokens = random_tokens(jobs[0]) if tokens is None else tokens
    if tokens.dim() != 1 or tokens.dtype != torch.int64:
        raise ValueError(f"tokens must be a 1-D int64 tensor, got {tuple(tokens.shape)} "
                         f"{tokens.dtype}")
    if all(j.strategy == "single" for j in jobs):
        results = []
        for j in jobs:
            report, state = train_rank(j, tokens)
            local = report.pop("_local_state")
            results.append(RunResult([report], state, [local]))
        return results if isinstance(job, list) else results[0]
    world = jobs[0].world_size
    if any(j.strategy == "single" or j.world_size != world for j in jobs):
        raise ValueError("jobs run together must all be distributed with the same world_size")
    import torch.multiprocessing as mp

    from .memory import trim_heap

    trim_heap()  # the parent waits while the ranks run: give its freed heap back first
    results = []
    with tempfile.TemporaryDirectory(prefix="course_dist_") as tmp:
        out = Path(tmp)
        (out / "jobs.json").write_text(json.dumps([asdict(j) for j in jobs]))
        save_file({"tokens": tokens.contiguous()}, str(out / "tokens.safetensors"))
        mp.start_processes(_worker, args=(world, free_port(), tmp), nprocs=world, join=True,
                           start_method=start_method)
        for j in range(len(jobs)):
            ranks = [json.loads((out / f"job{j}_rank{r}.json").read_text())
                     for r in range(world)]
            local = [load_file(str(out / f"job{j}_rank{r}_local.safetensors"))
                     for r in range(world)]
            results.append(RunResult(ranks, load_file(str(out / f"job{j}_final.safetensors")),
                                     local))
    return results if isinstance(job, list) else results[0]


def _collectives_worker(rank: int, world_size: int, port: int, n: int, out_dir: str) -> None:
    """One rank of :func:`collectives_demo` (importable, so a notebook can start it)."""
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world_size, timeout=timedelta(seconds=60))
    try:
        # rank r holds its own "gradient": 10*(r+1) + [0, 1, ..., n-1]
        x = 10.0 * (rank + 1) + torch.arange(n, dtype=torch.float32)
        report = {"rank": rank, "before": x.tolist()}
        summed = x.clone()
        dist.all_reduce(summed)                       # every rank gets the sum of all ranks
        report["all_reduce"] = summed.tolist()
        shard = torch.empty(n // world_size)
        # (torch >= 2.10 names them *_single; older torch has only *_tensor)
        reduce_scatter = getattr(dist, "reduce_scatter_single", None) or dist.reduce_scatter_tensor
        all_gather = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor
        reduce_scatter(shard, x.clone())  # rank r gets the sum of its own 1/N slice
        report["reduce_scatter"] = shard.tolist()
        full = torch.empty(n)
        all_gather(full, shard)           # every rank gets all the slices, in rank order
        report["all_gather"] = full.tolist()
        tmp = Path(out_dir) / f"rank{rank}.json.tmp"
        tmp.write_text(json.dumps(report))
        os.replace(tmp, Path(out_dir) / f"rank{rank}.json")
    finally:
        dist.destroy_process_group()


def collectives_demo(world_size: int = 2, n: int = 4, start_method: str = "spawn") -> list[dict]:
    """The three collectives of data parallelism, run for real on ``world_size`` processes.

    Rank r starts with ``10*(r+1) + [0..n-1]``. Returns, per rank, its tensor ``before``, after
    ``all_reduce`` (sum), after ``reduce_scatter`` (its slice of the sum) and after
    ``all_gather`` of those slices (the sum again: all-reduce = reduce-scatter + all-gather).
    Taught in book/02_memory.md.
    """
    for name, value in (("world_size", world_size), ("n", n)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if world_size < 2 or world_size > 8:
        raise ValueError(f"world_size must be 2-8 processes on one machine, got {world_size}")
    if n % world_size or n > 2**20:
        raise ValueError(f"n must be a multiple of world_size={world_size} up to 2**20, got {n}")
    if start_method not in ("spawn", "fork"):
        raise ValueError(f"start_method must be 'spawn' or 'fork', got {start_method!r}")
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory(prefix="course_coll_") as tmp:
        mp.start_processes(_collectives_worker, args=(world_size, free_port(), n, tmp),
                           nprocs=world_size, join=True, start_method=start_method)
        return [json.loads((Path(tmp) / f"rank{r}.json").read_text())
                for r in range(world_size)]


def main(argv=None) -> int:
    """``torchrun`` entry: ``torchrun --nproc_per_node N -m course_lib.distributed ...``."""
    parser = argparse.ArgumentParser(prog="python -m course_lib.distributed")
    parser.add_argument("--strategy", choices=["ddp", "fsdp"], default="ddp")
    parser.add_argument("--model", default="tiny", help="'tiny' (random GPT) or 'tiny-gpt'")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--out", required=True, help="folder for the per-rank reports")
    args = parser.parse_args(argv)
    if "RANK" not in os.environ:
        parser.error("run me under torchrun (RANK and WORLD_SIZE are not set); "
                     "from Python use course_lib.distributed.run_distributed")
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    try:
        job = Job(strategy=args.strategy, world_size=world, steps=args.steps,
                  batch_size=args.batch_size,
                  **({} if args.model == "tiny" else {"model": args.model, "block_size": 64}))
    except ValueError as err:
        parser.error(str(err))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    dist.init_process_group("gloo", timeout=timedelta(seconds=60))
    try:
        report, state = train_rank(job, random_tokens(job) if args.model == "tiny"
                                   else organism_tokens(), rank)
        _write(out, "", report, state if rank == 0 else None)
        if rank == 0:
            print(json.dumps({k: v for k, v in report.items()
                              if k != "losses" and not k.startswith("_")}, indent=1))
    finally:
        dist.destroy_process_group()
    return 0


def organism_tokens(n_chars: int = 40_000, seed: int = 0) -> torch.Tensor:
    """The start of the story corpus, encoded with the model organism's tokenizer."""
    from .data import corpus_text
    from .models import load_pretrained

    tok = load_pretrained("tiny-gpt").tokenizer
    return torch.tensor(tok.encode(corpus_text("train", seed=seed)[:n_chars]), dtype=torch.long)


if __name__ == "__main__":
    sys.exit(main())
