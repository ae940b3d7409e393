"""Exact measurement from tensors: parameter, gradient, optimizer-state and saved-activation
bytes (``torch.autograd.graph.saved_tensors_hooks``), views and shared storages counted once.

Taught in book/02_memory.md.
"""

from __future__ import annotations

import ctypes
import gc
import sys

import torch
from torch import nn


def _storage_key(t: torch.Tensor):
    if hasattr(t, "to_local"):  # DTensor: count this rank's shard
        t = t.to_local()
    if t.device.type == "meta":
        return ("meta", id(t)), t.numel() * t.element_size()
    s = t.untyped_storage()
    return (t.device.type, s.data_ptr()), s.nbytes()


def tensor_bytes(tensors) -> int:
    """Bytes of the distinct storages behind ``tensors`` (views and repeats count once)."""
    if isinstance(tensors, torch.Tensor):
        tensors = [tensors]
    sizes = {}
    for t in tensors:
        if t is not None and not isinstance(t, torch.Tensor):
            raise TypeError(f"tensors must hold tensors (or None), got {type(t).__name__}")
        if t is not None:
            key, nbytes = _storage_key(t)
            sizes[key] = nbytes
    return sum(sizes.values())


def _check_module(name: str, module) -> None:
    if not isinstance(module, nn.Module):
        raise TypeError(f"{name} must be an nn.Module, got {type(module).__name__}")


def parameter_bytes(module: nn.Module) -> int:
    """Bytes of the module's parameters (a tied tensor counts once)."""
    _check_module("module", module)
    return tensor_bytes(module.parameters())


def gradient_bytes(module: nn.Module) -> int:
    """Bytes of the gradients ``backward`` left in the parameters' ``.grad``."""
    _check_module("module", module)
    return tensor_bytes(p.grad for p in module.parameters())


def optimizer_state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes of every tensor in the optimizer's state (Adam: exp_avg, exp_avg_sq, step)."""
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer, got "
                        f"{type(optimizer).__name__}")
    return tensor_bytes(
        v for state in optimizer.state.values() for v in state.values()
        if isinstance(v, torch.Tensor)
    )


class SavedTensorMeter:
    """Context manager that records what autograd saves for backward, by distinct storage.

    Parameters (and any ``exclude`` tensors) are left out: they are held anyway.
    ``.bytes`` is the total, ``.by_dtype`` splits it, ``.records`` lists (shape, dtype, bytes).
    """

    def __init__(self, exclude=()):
        exclude = list(exclude)
        for t in exclude:
            if not isinstance(t, torch.Tensor):
                raise TypeError(f"exclude must hold tensors, got {type(t).__name__}")
        self._exclude = {_storage_key(t)[0] for t in exclude}
        self._sizes: dict = {}
        self.records: list[tuple[tuple, torch.dtype, int]] = []
        self.by_dtype: dict[torch.dtype, int] = {}
        self._ctx = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)

    def _pack(self, t: torch.Tensor) -> torch.Tensor:
        key, nbytes = _storage_key(t)
        if key not in self._exclude and key not in self._sizes:
            self._sizes[key] = nbytes
            self.records.append((tuple(t.shape), t.dtype, nbytes))
            self.by_dtype[t.dtype] = self.by_dtype.get(t.dtype, 0) + nbytes
        # A detached alias: same storage, no grad_fn. Returning t itself, when t is
        # the node's own output, makes the node hold a tensor that points back at
        # the node: a cycle that outlives the step (a leak).
        return t.detach()

    @property
    def bytes(self) -> int:
        return sum(self._sizes.values())

    def __enter__(self):
        self._ctx.__enter__()
        return self

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)


def measure_training_step(model: nn.Module, idx: torch.Tensor, targets: torch.Tensor,
                          lr: float = 0.0) -> dict[str, int]:
    """One AdamW step of ``model(idx, targets) -> (logits, loss)``, measured from tensors.

    With the default ``lr=0`` the step allocates everything a real one does but leaves the
    weights as they were. ``activations`` are the bytes of the distinct storages autograd
    saved for backward (parameters and buffers left out), counted by :class:`SavedTensorMeter`.
    """
    _check_module("model", model)
    for name, t in (("idx", idx), ("targets", targets)):
        if not isinstance(t, torch.Tensor) or t.dtype not in (torch.int64, torch.int32):
            raise TypeError(f"{name} must be an integer tensor of token ids, got "
                            f"{getattr(t, 'dtype', type(t).__name__)}")
        if t.dim() != 2 or t.numel() == 0:
            raise ValueError(f"{name} must be a non-empty (batch, seq) tensor, got "
                             f"{tuple(t.shape)}")
    if idx.shape != targets.shape:
        raise ValueError(f"idx {tuple(idx.shape)} and targets {tuple(targets.shape)} differ")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not 0 <= lr < float("inf"):
        raise ValueError(f"lr must be a finite number >= 0, got {lr!r}")
    model.train()
    model.zero_grad(set_to_none=True)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    buffers = list(model.buffers())
    with SavedTensorMeter(exclude=list(model.parameters()) + buffers) as meter:
        _, loss = model(idx, targets)
    activations = meter.bytes
    loss.backward()
    opt.step()
    out = {
        "weights": parameter_bytes(model),
        "gradients": gradient_bytes(model),
        "optimizer": optimizer_state_bytes(opt),
        "activations": activations,
    }
    out["total"] = sum(out.values())
    model.zero_grad(set_to_none=True)
    del opt, loss
    trim_heap()
    return out


def trim_heap() -> None:
    """Hand memory that Python and PyTorch freed back to the operating system.

    glibc's ``malloc`` keeps freed blocks for reuse, so a process's resident size stays at its
    high-water mark after big tensors are gone; ``malloc_trim`` releases them. No-op elsewhere.
    """
    gc.collect()
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):
            pass
