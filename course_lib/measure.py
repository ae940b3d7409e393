"""Measuring time and memory: allocator-event replay, peak memory, best-of-n timing.

Taught in book/02_memory.md and book/04_attention.md, used again in book/06_inference.md.
One module for every measurement the course rests on, so a chapter's numbers and the
benchmarks in bench/ come from the same code.

- ``measure_peak_memory``: peak tensor bytes a call allocates (CUDA: the caching allocator's
  peak; CPU: replay of the torch profiler's allocation and free events).
- ``benchmark``: best-of-``repeats`` wall time.
- ``measure_matmul_flops``, ``measure_copy_bandwidth``: the two roofs of a roofline.
- ``cpu_cache_bytes``: a core's cache size, the CPU stand-in for on-chip SRAM.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from collections.abc import Callable
from numbers import Integral
from pathlib import Path

import torch

__all__ = [
    "measure_peak_memory",
    "benchmark",
    "measure_matmul_flops",
    "measure_copy_bandwidth",
    "cpu_cache_bytes",
]


def _check_count(name: str, value, minimum: int = 1) -> None:
    """An int (not a bool, not 2.0) of at least ``minimum``: TypeError or ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _check_callable(name: str, fn) -> None:
    if not callable(fn):
        raise TypeError(f"{name} must be callable, got {type(fn).__name__}")


@contextlib.contextmanager
def _quiet_stderr():
    """Silence file descriptor 2 (C++ logging, not Python warnings) for a moment."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no real fd 2 (some embedded interpreters): nothing to silence
        yield
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _memory_events(fn: Callable, args, kwargs, who: str):
    """Run ``fn`` under the torch profiler; return (result, its allocation/free events in
    order). Each event's ``nbytes()`` is positive for an allocation, negative for a free."""
    from torch.profiler import ProfilerActivity, profile

    prof = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
    with _quiet_stderr():  # the profiler logs a line to fd 2 on every start and stop
        prof.start()
    try:
        result = fn(*args, **kwargs)
    finally:
        with _quiet_stderr():
            prof.stop()
    try:  # the raw event stream keeps the order of every allocation and free
        raw = prof.profiler.kineto_results.events()
    except AttributeError as err:  # a torch without this (semi-private) profiler API
        raise RuntimeError(f"{who} needs torch's kineto profiler results") from err
    return result, [e for e in raw if e.name() == "[memory]"]


def measure_peak_memory(fn: Callable, *args, **kwargs) -> tuple[object, int]:
    """Run ``fn(*args, **kwargs)``; return (result, peak bytes allocated during the call).

    Counts tensor memory that the call allocates on top of what existed before it, output
    included, at its highest point. On CUDA tensors it uses the caching allocator's peak; on
    CPU it replays the allocation and free events that the torch profiler records.
    Taught in book/02_memory.md and book/04_attention.md.
    """
    _check_callable("fn", fn)
    tensors = [a for a in args if isinstance(a, torch.Tensor)]
    if tensors and tensors[0].is_cuda:
        device = tensors[0].device
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        result = fn(*args, **kwargs)
        torch.cuda.synchronize(device)
        return result, torch.cuda.max_memory_allocated(device) - base
    result, events = _memory_events(fn, args, kwargs, "measure_peak_memory")
    current = peak = 0
    for event in sorted(events, key=lambda e: e.start_ns()):
        if event.device_type() == torch.autograd.DeviceType.CPU:
            current += event.nbytes()
            peak = max(peak, current)
    return result, peak


def benchmark(fn: Callable, *args, repeats: int = 5, warmup: int = 1, **kwargs) -> float:
    """Best-of-``repeats`` wall time in seconds (the minimum is the least noisy estimate).

    ``warmup`` untimed calls come first (0 is allowed). Taught in book/04_attention.md.
    """
    _check_callable("fn", fn)
    _check_count("repeats", repeats)
    _check_count("warmup", warmup, minimum=0)
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    for _ in range(warmup):
        fn(*args, **kwargs)
    best = math.inf
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn(*args, **kwargs)
        sync()
        best = min(best, time.perf_counter() - start)
    return best


def measure_matmul_flops(
    dtype: torch.dtype = torch.float32, n: int = 1024, repeats: int = 5, device="cpu"
) -> float:
    """Peak FLOP/s of an n x n x n matmul in ``dtype`` (2 n^3 FLOPs per call)."""
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating-point torch.dtype, got {dtype!r}")
    _check_count("n", n)
    _check_count("repeats", repeats)
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=gen).to(device=device, dtype=dtype)
    b = torch.randn(n, n, generator=gen).to(device=device, dtype=dtype)
    return 2 * n**3 / benchmark(torch.matmul, a, b, repeats=repeats)


def measure_copy_bandwidth(nbytes: int = 64 * 2**20, repeats: int = 5, device="cpu") -> float:
    """Memory bandwidth in bytes/s from copying an fp32 buffer (read + write = 2 x nbytes)."""
    _check_count("nbytes", nbytes, minimum=4)  # at least one fp32 element
    _check_count("repeats", repeats)
    src = torch.ones(nbytes // 4, device=device)
    dst = torch.empty_like(src)
    return 2 * src.numel() * 4 / benchmark(dst.copy_, src, repeats=repeats)


def cpu_cache_bytes(level: int = 2, default: int = 2**20) -> int:
    """Size of one core's level-``level`` data cache, read from Linux sysfs.

    The CPU stand-in for a GPU's on-chip SRAM in the IO model; ``default`` where sysfs is
    missing (macOS, Windows) or does not list that level.
    """
    _check_count("level", level)
    _check_count("default", default)
    units = {"K": 2**10, "M": 2**20, "G": 2**30}
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            if int((index / "level").read_text()) != level:
                continue
            if (index / "type").read_text().strip() == "Instruction":
                continue
            size = (index / "size").read_text().strip()
        except (OSError, ValueError):
            continue
        if size[-1:] in units and size[:-1].isdigit():
            return int(size[:-1]) * units[size[-1]]
        if size.isdigit():
            return int(size)
    return default


# --- training-step memory (chapter 2) ---

__all__ += ["measure_live_bytes"]


def measure_live_bytes(fn: Callable, *args, **kwargs) -> tuple[object, int]:
    """Run ``fn(*args, **kwargs)``; return (result, tensor bytes it allocated that are still
    alive when it returns).

    The bytes a call leaves behind: its outputs and whatever they keep alive (after a forward
    pass, the activations autograd saved for backward). On CPU the torch profiler's allocation
    and free events of the call are summed (an allocation counts +n bytes, a free -n), so a
    tensor made and dropped inside the call counts 0; on CUDA it is the change in
    ``torch.cuda.memory_allocated``. It does not look at autograd at all, which makes it a
    second, independent check of :class:`course_lib.memory.SavedTensorMeter`.
    Taught in book/02_memory.md.
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    tensors = [a for a in args if isinstance(a, torch.Tensor)]
    if tensors and tensors[0].is_cuda:
        device = tensors[0].device
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        result = fn(*args, **kwargs)
        torch.cuda.synchronize(device)
        return result, torch.cuda.memory_allocated(device) - base
    result, events = _memory_events(fn, args, kwargs, "measure_live_bytes")
    live = sum(e.nbytes() for e in events if e.device_type() == torch.autograd.DeviceType.CPU)
    return result, live
