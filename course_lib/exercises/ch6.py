"""Chapter 6 exercises: magnitude pruning, a 2:4 mask."""

from __future__ import annotations

import torch

from course_lib.exercises import Case, Exercise, register
from course_lib.exercises._util import need_real, need_tensor, randn


def magnitude_prune_rows(weight: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Zero the round(sparsity * d_in) smallest-magnitude weights of every row: the
    convention of ``prune.magnitude_prune`` (Python's round, so 2.8 -> 3 and a half goes to
    the even neighbour, 2.5 -> 2)."""
    need_tensor("weight", weight, min_dim=2)
    need_real("sparsity", sparsity, 0.0, 1.0, low_open=False, high_open=True)
    k = round(sparsity * weight.shape[1])
    pruned = weight.clone()
    if k:
        idx = weight.abs().argsort(dim=1)[:, :k]
        pruned.scatter_(1, idx, 0.0)
    return pruned


register(Exercise(
    id="ch6.magnitude_prune", title="Magnitude pruning, row by row", kind="function",
    section="06_inference.md",
    prompt=("Write magnitude_prune_rows(weight, sparsity) for a (d_out, d_in) weight: in every "
            "row, set the round(sparsity * d_in) entries of smallest |w| to zero (Python's "
            "round, as prune.magnitude_prune: 0.35 * 8 = 2.8 prunes 3); return a new tensor. "
            "Raise ValueError for sparsity outside [0, 1)."),
    hint="Per row, not one threshold for the whole matrix: argsort |w| along dim 1.",
    reference=magnitude_prune_rows,
    cases=lambda: [
        Case((torch.tensor([[1.0, -0.1, 0.5, -2.0]]), 0.5)),
        Case((torch.tensor([[1.0, 2.0, 3.0, 4.0], [0.01, 0.02, 0.03, 0.04]]), 0.5),
             note="rows of very different size"),
        Case((randn(4, 10, seed=3), 0.3)),
        Case((randn(3, 8, seed=4), 0.0), note="sparsity 0 changes nothing"),
        Case((randn(3, 8, seed=5), 0.35), note="0.35 * 8 = 2.8 rounds to 3, not down to 2"),
    ],
    bad_cases=lambda: [Case((randn(2, 4), 1.0), note="sparsity 1"),
                       Case((randn(2, 4), -0.1), note="negative sparsity")],
))


def mask_2_4(weight: torch.Tensor) -> torch.Tensor:
    """bool mask keeping the 2 largest |w| of every 4 consecutive weights along d_in."""
    need_tensor("weight", weight, min_dim=2)
    d_out, d_in = weight.shape
    if d_in % 4:
        raise ValueError(f"2:4 needs d_in divisible by 4, got {d_in}")
    groups = weight.abs().reshape(d_out, d_in // 4, 4)
    top = groups.topk(2, dim=-1).indices
    mask = torch.zeros_like(groups, dtype=torch.bool).scatter(-1, top, True)
    return mask.reshape(d_out, d_in)


register(Exercise(
    id="ch6.mask_2_4", title="A 2:4 sparsity mask", kind="function",
    section="06_inference.md",
    prompt=("Write mask_2_4(weight) for a (d_out, d_in) weight: a bool mask, True for the two "
            "largest-magnitude weights in every group of 4 consecutive weights of a row. Raise "
            "ValueError when d_in is not divisible by 4."),
    hint="Reshape to (d_out, d_in // 4, 4) and take the top 2 of |w| in the last dimension.",
    reference=mask_2_4,
    cases=lambda: [
        Case((torch.tensor([[0.1, -0.9, 0.5, 0.2]]),)),
        Case((torch.tensor([[4.0, 3.0, 2.0, 1.0, -1.0, -2.0, -3.0, -4.0]]),),
             note="two groups, signs matter not"),
        Case((randn(3, 12, seed=5),)),
    ],
    bad_cases=lambda: [Case((randn(2, 6),), note="d_in = 6")],
))
