"""Post-training quantization of one linear layer: round-to-nearest and GPTQ.

Taught in book/06_inference.md. Both quantizers use the same grid: asymmetric (zero-point)
min-max over each output row, or over each group of ``group_size`` consecutive input columns
of a row, with the range stretched to include 0 (as ``quant.zeropoint_quantize`` of chapter 3).
Both return the dequantized weight, so a quantized layer is tested by what it computes.

GPTQ (Frantar et al. 2023) quantizes the columns of ``W`` one at a time and, after each,
moves the remaining columns to cancel the error the rounding made on the layer's output
``W X``, using the layer Hessian ``H = 2 X^T X / n`` of the calibration inputs. The paper's
three tricks: (1) the updates use rows of the upper Cholesky factor of ``H^-1`` (numerically
stable, computed once); (2) columns are processed in blocks and the updates to later blocks
are applied lazily, once per block, as one matrix product; (3) optional act-order quantizes
the columns with the largest Hessian diagonal first.
"""

from __future__ import annotations

import torch

from ._checks import check_float, check_int, check_tensor

__all__ = ["gptq_quantize", "hessian", "inverse_hessian_factor", "layer_error", "rtn_quantize"]


# --------------------------------------------------------------------------- checks
def check_weight(weight, name: str = "weight", where: str = "gptq") -> torch.Tensor:
    """A non-empty, finite, floating-point 2-D tensor."""
    return check_tensor(where, name, weight, floating=True, dims=(2,), nonempty=True,
                        finite=True)


def check_inputs(inputs, d_in: int, where: str = "gptq") -> torch.Tensor:
    check_weight(inputs, "inputs", where)
    if inputs.shape[1] != d_in:
        raise ValueError(f"{where}: inputs must be (n_samples, d_in={d_in}), "
                         f"got {tuple(inputs.shape)}")
    return inputs


def check_bits(bits, where: str = "gptq") -> int:
    if isinstance(bits, bool) or not isinstance(bits, int) or not 2 <= bits <= 8:
        raise ValueError(f"{where}: bits must be an integer in 2..8, got {bits!r}")
    return bits


def check_group_size(group_size, d_in: int, where: str = "gptq") -> int | None:
    if group_size is None:
        return None
    group_size = check_int(where, "group_size", group_size, low=1)
    if d_in % group_size:
        raise ValueError(f"{where}: group_size={group_size} must divide d_in={d_in}")
    return group_size


def check_damp(damp, where: str = "gptq") -> float:
    return check_float(where, "damp", damp, low=0, high=1e6, high_open=True)


def check_block_damp(where: str, block_size, damp, act_order=False) -> int:
    """GPTQ's and SparseGPT's loop settings: block_size >= 1, damp in [0, 1e6), a bool."""
    check_damp(damp, where)
    if not isinstance(act_order, bool):
        raise TypeError(f"{where}: act_order must be a bool, got {act_order!r}")
    return check_int(where, "block_size", block_size, low=1)


# --------------------------------------------------------------------------- the grid
def grid_params(w: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale and zero point of each row of ``w`` (d_out, k): min-max, range includes 0."""
    levels = 2**bits - 1
    lo = w.amin(dim=1, keepdim=True).clamp(max=0)
    hi = w.amax(dim=1, keepdim=True).clamp(min=0)
    scale = (hi - lo) / levels
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))  # an all-zero row stays 0
    zero = torch.round(-lo / scale)
    return scale, zero


def quantize_dequantize(w: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor,
                        bits: int) -> torch.Tensor:
    """Round ``w`` to the grid and map it back: ``(clamp(round(w/s) + z) - z) * s``."""
    q = (torch.round(w / scale) + zero).clamp(0, 2**bits - 1)
    return (q - zero) * scale


def rtn_quantize(weight: torch.Tensor, bits: int, group_size: int | None = None) -> torch.Tensor:
    """Round-to-nearest: every weight to the nearest point of its row's (or group's) grid.
    Returns the dequantized weight, same shape and dtype."""
    check_weight(weight, where="rtn_quantize")
    check_bits(bits, "rtn_quantize")
    d_out, d_in = weight.shape
    g = check_group_size(group_size, d_in, "rtn_quantize") or d_in
    w = weight.reshape(d_out, d_in // g, g).reshape(-1, g)   # (d_out * n_groups, g)
    scale, zero = grid_params(w, bits)
    return quantize_dequantize(w, scale, zero, bits).reshape(d_out, d_in).to(weight.dtype)


# --------------------------------------------------------------------------- second order
def hessian(inputs: torch.Tensor) -> torch.Tensor:
    """``H = 2 X^T X / n`` (d_in, d_in), float64: the Hessian of ``||W X^T - W' X^T||^2 / n``
    with respect to each row of ``W'``."""
    x = check_weight(inputs, "inputs", "hessian").to(torch.float64)
    return 2.0 * x.T @ x / x.shape[0]


def inverse_hessian_factor(h: torch.Tensor, damp: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Upper Cholesky factor ``U`` of ``(H + damp * mean(diag H) * I)^-1`` (``U^T U`` is the
    inverse), and the mask of dead inputs (always zero in the calibration data).

    Dead inputs get ``H_jj = 1``: nothing is learned about them, their weights are free.
    """
    damp = check_damp(damp, "inverse_hessian_factor")
    check_weight(h, "h", "inverse_hessian_factor")
    if h.shape[0] != h.shape[1]:
        raise ValueError(f"inverse_hessian_factor: h must be square (d_in, d_in), "
                         f"got {tuple(h.shape)}")
    h = h.clone()
    dead = torch.diag(h) == 0
    h[dead, dead] = 1.0
    h += damp * torch.diag(h).mean() * torch.eye(len(h), dtype=h.dtype)
    lower, info = torch.linalg.cholesky_ex(h)
    if info.item() != 0:
        raise ValueError("inverse_hessian_factor: the layer Hessian h = X^T X is singular (not "
                         "positive definite): "
                         "use damp > 0 or more calibration samples")
    h_inv = torch.cholesky_inverse(lower)
    return torch.linalg.cholesky(h_inv, upper=True), dead


def layer_error(weight: torch.Tensor, new_weight: torch.Tensor, inputs: torch.Tensor) -> float:
    """``||W X^T - W' X^T||_F^2``: how much the layer's output moves (the GPTQ objective)."""
    check_weight(weight, where="layer_error")
    check_weight(new_weight, "new_weight", "layer_error")
    check_inputs(inputs, weight.shape[1], "layer_error")
    if new_weight.shape != weight.shape:
        raise ValueError(f"layer_error: new_weight shape {tuple(new_weight.shape)} != weight shape "
                         f"{tuple(weight.shape)}")
    diff = (weight.double() - new_weight.double()) @ inputs.double().T
    return float(diff.pow(2).sum())


# --------------------------------------------------------------------------- GPTQ
def gptq_quantize(weight: torch.Tensor, inputs: torch.Tensor, bits: int,
                  group_size: int | None = None, damp: float = 0.01, block_size: int = 128,
                  act_order: bool = False) -> torch.Tensor:
    """GPTQ on one layer: ``weight`` (d_out, d_in), calibration ``inputs`` (n, d_in). Returns the
    dequantized weight on the same grid as :func:`rtn_quantize`.

    Works in the weight's dtype (float64 in, float64 arithmetic). With ``group_size`` each
    group's grid is set when its first column is reached, from the already-updated weights;
    blocks are widened to whole groups so that a group never straddles a lazy update.
    """
    where = "gptq_quantize"
    check_weight(weight, where=where)
    d_out, d_in = weight.shape
    check_inputs(inputs, d_in, where)
    check_bits(bits, where)
    g = check_group_size(group_size, d_in, where)
    block_size = check_block_damp(where, block_size, damp, act_order)
    if g is not None:
        block_size = max(g, block_size // g * g)
    dtype = weight.dtype
    h, w = hessian(inputs), weight.clone()
    perm = torch.arange(d_in)
    if act_order:  # the columns the inputs excite most go first
        perm = torch.argsort(torch.diag(h), descending=True)
        h, w = h[perm][:, perm], w[:, perm]
    u, dead = inverse_hessian_factor(h, damp)
    w[:, dead] = 0
    u = u.to(dtype)
    if g is None:
        scale, zero = grid_params(w, bits)
    out = torch.zeros_like(w)
    for i1 in range(0, d_in, block_size):
        i2 = min(i1 + block_size, d_in)
        w1, u1 = w[:, i1:i2].clone(), u[i1:i2, i1:i2]     # (d_out, B), (B, B)
        err1 = torch.zeros_like(w1)
        for i in range(i2 - i1):
            if g is not None and (i1 + i) % g == 0:
                scale, zero = grid_params(w1[:, i:i + g], bits)
            q = quantize_dequantize(w1[:, i:i + 1], scale, zero, bits)[:, 0]
            out[:, i1 + i] = q
            err = (w1[:, i] - q) / u1[i, i]
            w1[:, i:] -= err[:, None] * u1[i, i:][None, :]  # OBS update within the block
            err1[:, i] = err
        w[:, i2:] -= err1 @ u[i1:i2, i2:]                   # lazy update of later blocks
    if act_order:
        out = out[:, torch.argsort(perm)]
    return out.to(dtype)


# --------------------------------------------------------------------------- calibration
def block_linears(model) -> dict[str, torch.nn.Linear]:
    """The ``nn.Linear`` layers inside a course GPT's blocks (every Linear but the head)."""
    return {f"blocks.{i}.{name}": mod for i, block in enumerate(model.blocks)
            for name, mod in block.named_modules() if isinstance(mod, torch.nn.Linear)}


@torch.no_grad()
def linear_inputs(model, tokens: torch.Tensor) -> dict[str, torch.Tensor]:
    """Run ``tokens`` (B, T) through ``model`` once and return the input ``(B*T, d_in)`` of each
    Linear of :func:`block_linears` (one shot: every layer sees the uncompressed model's
    activations)."""
    seen: dict[str, torch.Tensor] = {}
    hooks = [mod.register_forward_hook(
        lambda m, args, out, name=name: seen.__setitem__(name, args[0].reshape(-1,
                                                                               args[0].shape[-1])))
        for name, mod in block_linears(model).items()]
    try:
        model(tokens)
    finally:
        for h in hooks:
            h.remove()
    return seen


@torch.no_grad()
def compress_linears(model, inputs: dict[str, torch.Tensor], fn):
    """Replace the weight of every Linear of :func:`block_linears` by ``fn(weight, inputs)``;
    ``model`` is changed in place and returned (deep-copy it first to keep the original)."""
    for name, mod in block_linears(model).items():
        mod.weight.copy_(fn(mod.weight, inputs[name]))
    return model
