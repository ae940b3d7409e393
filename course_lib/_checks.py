"""Argument checks shared by the modules: each error names the function and the argument.

Not taught; every public function of ``attention``, ``tokenizer``, ``models`` and ``train``,
and of chapters 5-7's modules (``peft``, ``align``, ``evaluate``, ``prune``, ``gptq``,
``distill``, ``speculative``, ``rag``), calls these before it computes anything.
"""

from __future__ import annotations

import math
import numbers

import torch


def check_int(where: str, name: str, value, low: int | None = None,
              high: int | None = None) -> int:
    """``value`` as an int; TypeError if it is not an integer (bool and 2.5 included),
    ValueError if outside [low, high]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{where}: {name} must be an int, got {value!r}")
    value = int(value)
    if low is not None and value < low:
        raise ValueError(f"{where}: {name} must be >= {low}, got {value}")
    if high is not None and value > high:
        raise ValueError(f"{where}: {name} must be <= {high}, got {value}")
    return value


def check_float(where: str, name: str, value, low: float | None = None,
                high: float | None = None, low_open: bool = False,
                high_open: bool = False) -> float:
    """``value`` as a finite float in [low, high]; NaN and inf are ValueErrors.
    ``low_open``/``high_open`` exclude the bound itself: (low, high]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{where}: {name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{where}: {name} must be finite, got {value}")
    if (low is not None and (value <= low if low_open else value < low)) or \
            (high is not None and (value >= high if high_open else value > high)):
        raise ValueError(f"{where}: {name} must be in {'(' if low_open else '['}{low}, {high}"
                         f"{')' if high_open else ']'}, got {value}")
    return value


def check_tensor(where: str, name: str, x, floating: bool | None = None,
                 dims: tuple[int, ...] | None = None, min_dim: int | None = None,
                 nonempty: bool = False, finite: bool = False):
    """A torch.Tensor with a floating (or integer) dtype and the given number of dims;
    ``nonempty`` refuses zero elements, ``finite`` refuses NaN and inf."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{where}: {name} must be a torch.Tensor, got {type(x).__name__}")
    if floating is True and not x.is_floating_point():
        raise TypeError(f"{where}: {name} must be a floating-point tensor, got {x.dtype}")
    if floating is False and (x.is_floating_point() or x.is_complex() or x.dtype == torch.bool):
        raise TypeError(f"{where}: {name} must be an integer tensor, got {x.dtype}")
    if dims is not None and x.dim() not in dims:
        raise ValueError(f"{where}: {name} must have {' or '.join(map(str, dims))} dims, got "
                         f"shape {tuple(x.shape)}")
    if min_dim is not None and x.dim() < min_dim:
        raise ValueError(f"{where}: {name} needs at least {min_dim} dims, got shape "
                         f"{tuple(x.shape)}")
    if nonempty and x.numel() == 0:
        raise ValueError(f"{where}: {name} is empty (shape {tuple(x.shape)})")
    if finite and x.is_floating_point() and not torch.isfinite(x).all():
        raise ValueError(f"{where}: {name} contains NaN or inf")
    return x


def check_list(where: str, name: str, value, of: type | tuple[type, ...] | None = None,
               nonempty: bool = True) -> list:
    """``value`` as a list: a list or tuple (a bare str is refused, so ``"abc"`` is not three
    items), non-empty unless told, each item an instance of ``of`` when given."""
    if isinstance(value, str | bytes) or not isinstance(value, list | tuple):
        raise TypeError(f"{where}: {name} must be a list, got {type(value).__name__}")
    if nonempty and not value:
        raise ValueError(f"{where}: {name} is empty")
    if of is not None:
        for item in value:
            if isinstance(item, bool) and bool not in (of if isinstance(of, tuple) else (of,)) \
                    or not isinstance(item, of):
                raise TypeError(f"{where}: every item of {name} must be "
                                f"{getattr(of, '__name__', of)}, got {item!r}")
    return list(value)


def check_ids(where: str, ids, vocab_size: int) -> list[int]:
    """Token ids as a list of ints in [0, vocab_size): a list/tuple of ints or a 0-/1-D
    integer tensor. 1.7, True, "7" and negative ids are refused."""
    if isinstance(ids, torch.Tensor):
        check_tensor(where, "ids", ids, floating=False, dims=(0, 1))
        ids = ids.reshape(-1).tolist()
    if isinstance(ids, str | bytes) or not hasattr(ids, "__iter__"):
        raise TypeError(f"{where}: ids must be a list of ints, got {type(ids).__name__}")
    out = []
    for i in ids:
        if isinstance(i, bool) or not isinstance(i, numbers.Integral):
            raise TypeError(f"{where}: ids must be ints, got {i!r}")
        out.append(int(i))
    bad = [i for i in out if not 0 <= i < vocab_size]
    if bad:
        raise ValueError(f"{where}: ids out of range [0, {vocab_size}): {bad[:10]}")
    return out
