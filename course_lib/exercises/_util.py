"""Small helpers shared by the chapters' exercise definitions."""

from __future__ import annotations

from numbers import Integral, Real

import torch


def randn(*shape: int, seed: int = 0, scale: float = 1.0) -> torch.Tensor:
    """A reproducible normal tensor, rounded to 4 decimals so a pasted case is short."""
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(*shape, generator=gen) * scale).round(decimals=4)


def need_tensor(name: str, x, min_dim: int = 1) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() < min_dim:
        raise ValueError(f"{name} must have at least {min_dim} dimension(s), got {x.dim()}")
    if x.numel() == 0:
        raise ValueError(f"{name} is empty")
    if x.is_floating_point() and torch.isnan(x).any():
        raise ValueError(f"{name} contains NaN")


def need_int(name: str, value, low: int = 0) -> None:
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")


def need_real(name: str, value, low: float, high: float, low_open=True, high_open=False):
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if value != value or (value <= low if low_open else value < low) or (
            value >= high if high_open else value > high):
        lo = "(" if low_open else "["
        hi = ")" if high_open else "]"
        raise ValueError(f"{name} must be in {lo}{low}, {high}{hi}, got {value}")
