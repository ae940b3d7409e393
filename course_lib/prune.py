"""Pruning one linear layer: magnitude, Wanda and SparseGPT, unstructured or N:M.

Taught in book/06_inference.md. ``weight`` is ``(d_out, d_in)`` as in ``nn.Linear``; calibration
``inputs`` are ``(n_samples, d_in)``. ``sparsity`` is the share of weights zeroed in each output
row: ``round(sparsity * d_in)`` of them, Python's ``round``, so 2.8 -> 3 and an exact half
goes to the even neighbour (2.5 -> 2); ``n_m=(n, m)`` instead keeps ``n`` of every ``m``
consecutive weights along ``d_in`` (2:4 is what sparse tensor cores run). Each function returns
the pruned weight; the zeros are exact zeros.

* magnitude: drop the smallest ``|w|``.
* Wanda (Sun et al. 2024): drop the smallest ``|w_ij| * ||x_j||``; no weight update.
* SparseGPT (Frantar & Alistarh 2023): go through the columns like GPTQ; a pruned weight is
  "rounded" to 0 and its error is spread over the row's not-yet-visited weights with the
  inverse Hessian (Optimal Brain Surgeon). The mask is chosen every ``block_size`` columns from
  ``w^2 / [H^-1]_jj^2`` on the already-updated weights (adaptive mask selection).
"""

from __future__ import annotations

import torch

from ._checks import check_int, check_tensor
from .gptq import check_block_damp, check_inputs, check_weight, hessian, inverse_hessian_factor

__all__ = ["magnitude_prune", "n_m_mask", "sparsegpt_prune", "sparsity_of", "wanda_prune"]


def check_sparsity(sparsity, where: str = "prune") -> float:
    if isinstance(sparsity, bool) or not isinstance(sparsity, int | float) \
            or not 0.0 <= sparsity < 1.0:
        raise ValueError(f"{where}: sparsity must be a number in [0, 1), got {sparsity!r}")
    return float(sparsity)


def check_n_m(n_m, d_in: int, where: str = "prune") -> tuple[int, int]:
    if (not isinstance(n_m, tuple | list) or len(n_m) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in n_m)):
        raise ValueError(f"{where}: n_m must be a pair of ints (n, m), got {n_m!r}")
    n, m = n_m
    if not 1 <= n <= m:
        raise ValueError(f"{where}: n_m=(n, m) needs 1 <= n <= m, got {n_m!r}")
    if d_in % m:
        raise ValueError(f"{where}: n_m={n_m!r}: d_in={d_in} is not divisible by m={m}")
    return n, m


def _check_pattern(sparsity, n_m, d_in, where):
    """Either an unstructured sparsity or an N:M pattern (with a matching sparsity)."""
    sparsity = check_sparsity(sparsity, where)
    if n_m is None:
        return sparsity, None
    n, m = check_n_m(n_m, d_in, where)
    if abs(sparsity - (1 - n / m)) > 1e-9:
        raise ValueError(f"{where}: sparsity={sparsity} disagrees with n_m={n_m!r} "
                         f"(which is {1 - n / m:g} sparse)")
    return sparsity, (n, m)


def lowest_k_mask(scores: torch.Tensor, k: int) -> torch.Tensor:
    """True at the ``k`` smallest scores of each row (ties: the first ones)."""
    mask = torch.zeros_like(scores, dtype=torch.bool)
    if k > 0:
        mask.scatter_(1, torch.topk(scores, k, dim=1, largest=False, sorted=False).indices, True)
    return mask


def n_m_mask(scores: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """True (prune) at the ``m - n`` smallest scores of every ``m`` consecutive columns."""
    check_tensor("n_m_mask", "scores", scores, floating=True, dims=(2,), nonempty=True,
                 finite=True)
    check_int("n_m_mask", "n", n, low=1)
    check_int("n_m_mask", "m", m, low=n)
    d_out, d_in = scores.shape
    if d_in % m:
        raise ValueError(f"n_m_mask: scores has d_in={d_in} columns, not divisible by m={m}")
    groups = scores.reshape(d_out, d_in // m, m)                # (d_out, groups, m)
    drop = torch.topk(groups, m - n, dim=-1, largest=False).indices
    mask = torch.zeros_like(groups, dtype=torch.bool).scatter_(-1, drop, True)
    return mask.reshape(d_out, d_in)


def _prune_by_score(weight, scores, sparsity, n_m):
    if n_m is None:
        mask = lowest_k_mask(scores, round(sparsity * weight.shape[1]))
    else:
        mask = n_m_mask(scores, *n_m)
    return weight.masked_fill(mask, 0.0)


def magnitude_prune(weight: torch.Tensor, sparsity: float,
                    n_m: tuple[int, int] | None = None) -> torch.Tensor:
    """Zero the ``round(sparsity * d_in)`` smallest-magnitude weights of each row (or the
    ``m - n`` smallest of each group of ``m``)."""
    check_weight(weight, where="magnitude_prune")
    sparsity, n_m = _check_pattern(sparsity, n_m, weight.shape[1], "magnitude_prune")
    return _prune_by_score(weight, weight.abs(), sparsity, n_m)


def wanda_prune(weight: torch.Tensor, inputs: torch.Tensor, sparsity: float,
                n_m: tuple[int, int] | None = None) -> torch.Tensor:
    """Zero the weights with the smallest ``|w_ij| * ||x_j||_2`` in each row (Wanda)."""
    check_weight(weight, where="wanda_prune")
    check_inputs(inputs, weight.shape[1], "wanda_prune")
    sparsity, n_m = _check_pattern(sparsity, n_m, weight.shape[1], "wanda_prune")
    norms = inputs.double().norm(dim=0).to(weight.dtype)      # (d_in,)
    return _prune_by_score(weight, weight.abs() * norms[None, :], sparsity, n_m)


def sparsegpt_prune(weight: torch.Tensor, inputs: torch.Tensor, sparsity: float,
                    n_m: tuple[int, int] | None = None, damp: float = 0.01,
                    block_size: int = 128) -> torch.Tensor:
    """SparseGPT on one layer. Each row ends with exactly ``round(sparsity * d_in)`` zeros
    (block ``[i1, i2)`` prunes ``round(s * i2) - round(s * i1)`` of them), or the N:M pattern.
    Works in the weight's dtype."""
    where = "sparsegpt_prune"
    check_weight(weight, where=where)
    d_out, d_in = weight.shape
    check_inputs(inputs, d_in, where)
    sparsity, n_m = _check_pattern(sparsity, n_m, d_in, where)
    block_size = check_block_damp(where, block_size, damp)
    if n_m is not None:
        block_size = max(n_m[1], block_size // n_m[1] * n_m[1])  # whole groups per block
    u, dead = inverse_hessian_factor(hessian(inputs), damp)
    u = u.to(weight.dtype)
    w = weight.clone()
    w[:, dead] = 0
    for i1 in range(0, d_in, block_size):
        i2 = min(i1 + block_size, d_in)
        w1, u1 = w[:, i1:i2].clone(), u[i1:i2, i1:i2]            # (d_out, B), (B, B)
        err1 = torch.zeros_like(w1)
        # OBS saliency of removing w_j: w_j^2 / [H^-1]_jj = (w_j / U_jj)^2
        saliency = (w1 / torch.diag(u1)[None, :]) ** 2
        if n_m is None:
            mask1 = lowest_k_mask(saliency, round(sparsity * i2) - round(sparsity * i1))
        for i in range(i2 - i1):
            if n_m is not None and i % n_m[1] == 0:
                m = n_m[1]
                sal = (w1[:, i:i + m] / torch.diag(u1)[i:i + m][None, :]) ** 2
                if i == 0:
                    mask1 = torch.zeros_like(w1, dtype=torch.bool)
                mask1[:, i:i + m] = n_m_mask(sal, *n_m)
            q = w1[:, i].masked_fill(mask1[:, i], 0.0)
            err = (w1[:, i] - q) / u1[i, i]
            w1[:, i:] -= err[:, None] * u1[i, i:][None, :]        # OBS update of the row
            w1[:, i] = q
            err1[:, i] = err
        w[:, i1:i2] = w1
        w[:, i2:] -= err1 @ u[i1:i2, i2:]                         # lazy update, once a block
    return w


def sparsity_of(weight: torch.Tensor) -> float:
    """Share of exact zeros."""
    check_tensor("sparsity_of", "weight", weight, nonempty=True)
    return float((weight == 0).double().mean())
