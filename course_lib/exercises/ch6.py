"""Chapter 6 exercises (page 06_inference.md): magnitude pruning, the OBS choice of which
weight to prune, Wanda's score in an N:M pattern, one GPTQ column step, and why the Hessian
is dampened."""

from __future__ import annotations

from numbers import Integral

import torch

from course_lib.exercises import Case, Exercise, register
from course_lib.exercises._util import need_int, need_real, need_tensor, randn

PAGE = "06_inference.md"


# ------------------------------------------------------------------ 1. magnitude pruning
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
    section=PAGE,
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
    why=("Every row is its own output, so every row loses the same share: sort each row's "
         "$|w|$ and zero the `k = round(sparsity * d_in)` smallest. One threshold for the "
         "whole matrix would strip a row of small weights bare and leave a row of large ones "
         "untouched. Python's `round` (2.8 to 3, 2.5 to 2) is the convention of "
         "`prune.magnitude_prune`, so the count matches the course's code exactly."),
))


# ------------------------------------------------------------------ 2. which weight OBS drops
OBS_W = (0.4, 0.6, 0.5, 0.2)
OBS_H = ((0.5, 0.0, 0.0, 0.0), (0.0, 2.0, 1.9, 0.0), (0.0, 1.9, 2.0, 0.0), (0.0, 0.0, 0.0, 4.0))


def obs_choice() -> int:
    """The index OBS prunes: the smallest saliency w_j^2 / [H^-1]_jj."""
    w = torch.tensor(OBS_W, dtype=torch.float64)
    h_inv = torch.linalg.inv(torch.tensor(OBS_H, dtype=torch.float64))
    return int((w**2 / torch.diag(h_inv)).argmin())


register(Exercise(
    id="ch6.obs_choice", title="Which weight does OBS prune?", kind="number",
    section=PAGE, transfer=True,
    prompt=("A row w = (0.4, 0.6, 0.5, 0.2) has the Hessian H of the statement (inputs 1 and 2 "
            "nearly copies, input 0 quiet, input 3 loud). Which index j (0-based) has the "
            "smallest OBS cost (w_j)^2 / (2 [H^-1]_jj)?"),
    hint=("Invert H (it is block diagonal: a 2 x 2 block and two single entries) and compare "
          "w_j^2 / [H^-1]_jj, not |w_j| and not w_j^2 H_jj."),
    reference=obs_choice(), tolerance=0.0,
    why=("$H$ is block diagonal, so invert each block. Inputs 0 and 3 are alone: "
         "$[H^{-1}]_{00} = 1/0.5 = 2$, $[H^{-1}]_{33} = 1/4 = 0.25$. The block of inputs 1 "
         "and 2 has determinant $2 \\cdot 2 - 1.9^2 = 0.39$, so "
         "$[H^{-1}]_{11} = [H^{-1}]_{22} = 2 / 0.39 \\approx 5.13$. The costs "
         "$w_j^2 / (2[H^{-1}]_{jj})$ are $0.16/4 = 0.040$, $0.36/10.26 \\approx 0.035$, "
         "$0.25/10.26 \\approx 0.024$ and $0.04/0.5 = 0.080$: OBS prunes **index 2**. "
         "Magnitude would drop index 3 (the smallest weight, but on the loudest input, the "
         "most expensive); the diagonal score $w_j^2 H_{jj}$ (Wanda's, squared) would drop "
         "index 0. Only the inverse sees that input 2 is nearly a copy of input 1, so weight "
         "1 can take over weight 2's job, as in the chapter's two-weight example."),
))


# ------------------------------------------------------------------ 3. Wanda in N:M
def _need_nm(n, m, d_in):
    need_int("n", n, low=1)
    need_int("m", m, low=1)
    if n > m:
        raise ValueError(f"wanda_n_m: need n <= m, got n={n}, m={m}")
    if d_in % m:
        raise ValueError(f"wanda_n_m: d_in={d_in} is not divisible by m={m}")


def wanda_n_m(weight: torch.Tensor, inputs: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """Wanda's score |W_ij| * ||X_:,j||_2 in an N:M pattern: in every m consecutive weights of
    a row keep the n with the largest score, zero the others."""
    need_tensor("weight", weight, min_dim=2)
    need_tensor("inputs", inputs, min_dim=2)
    d_out, d_in = weight.shape
    if inputs.dim() != 2 or inputs.shape[1] != d_in:
        raise ValueError(f"wanda_n_m: inputs must be (n_samples, {d_in}), "
                         f"got {tuple(inputs.shape)}")
    _need_nm(n, m, d_in)
    score = weight.abs() * inputs.norm(dim=0)[None, :]           # (d_out, d_in)
    groups = score.reshape(d_out, d_in // m, m)
    keep = groups.topk(n, dim=-1).indices
    mask = torch.zeros_like(groups, dtype=torch.bool).scatter(-1, keep, True)
    return weight * mask.reshape(d_out, d_in)


def _wanda_cases():
    x_loud = torch.tensor([[1.0, 10.0, 1.0, 1.0], [1.0, -10.0, 1.0, 1.0]])
    return [
        Case((torch.tensor([[1.0, 0.2, 0.5, -0.8]]), x_loud, 2, 4),
             note="a small weight on a loud input (column 1) stays"),
        Case((randn(3, 8, seed=11), randn(5, 8, seed=12), 1, 4), note="1:4"),
        Case((randn(2, 8, seed=13), randn(6, 8, seed=14), 4, 8), note="4:8"),
        Case((randn(4, 6, seed=15), randn(5, 6, seed=16, scale=3.0), 2, 3), note="2:3"),
    ]


register(Exercise(
    id="ch6.wanda_n_m", title="Wanda's score in an N:M pattern", kind="function",
    section=PAGE, transfer=True,
    prompt=("Write wanda_n_m(weight, inputs, n, m): score |W_ij| * ||X[:, j]||_2, and in every "
            "m consecutive weights of a row keep the n of largest score, zero the rest; return "
            "the pruned weight. Raise ValueError for n > m or d_in not divisible by m."),
    hint=("The input norm is per column j, over all samples: inputs.norm(dim=0). Then reshape "
          "the scores to (d_out, d_in // m, m) and keep the top n in the last dimension."),
    reference=wanda_n_m, cases=_wanda_cases,
    bad_cases=lambda: [Case((randn(2, 6), randn(3, 6), 2, 4), note="m = 4 does not divide 6"),
                       Case((randn(2, 4), randn(3, 4), 3, 2), note="n > m"),
                       Case((randn(2, 4), randn(3, 5), 2, 4), note="inputs of the wrong width")],
    why=("Wanda measures what a weight contributes to the output: $|W_{ij}|$ times the size "
         "of the input it multiplies, $\\lVert X_{:,j}\\rVert_2$ over the calibration samples "
         "(a norm per input column, the same for every row). The N:M pattern is the 2:4 of "
         "the chapter with other numbers: group each row's scores in blocks of $m$ "
         "consecutive columns and keep the top $n$ per block.\n\n"
         "```python\nscore = weight.abs() * inputs.norm(dim=0)[None, :]\n"
         "groups = score.reshape(d_out, d_in // m, m)\n"
         "keep = groups.topk(n, dim=-1).indices\n```\n\n"
         "In the first case weight 0.2 sits on an input ten times louder than the others, so "
         "its score (about 2.8) beats 0.5 and 0.8 (about 0.7 and 1.1): magnitude would have "
         "dropped it."),
))


# ------------------------------------------------------------------ 4. one GPTQ column
def gptq_column(w: torch.Tensor, h: torch.Tensor, j: int, grid: torch.Tensor) -> torch.Tensor:
    """Round column j of w (d_out, d) to the nearest value of grid and move every other
    column by the OBS update -(w_j - q_j) / [H^-1]_jj * H^-1[:, j], for the Hessian h (d, d)
    of the weights still free. Returns the new weights; column j equals q exactly."""
    need_tensor("w", w, min_dim=2)
    need_tensor("h", h, min_dim=2)
    need_tensor("grid", grid)
    d = w.shape[1]
    if w.dim() != 2 or h.shape != (d, d):
        raise ValueError(f"gptq_column: h must be ({d}, {d}) for w of shape {tuple(w.shape)}, "
                         f"got {tuple(h.shape)}")
    if isinstance(j, bool) or not isinstance(j, Integral) or not 0 <= j < d:
        raise ValueError(f"gptq_column: j must be a column index in 0..{d - 1}, got {j!r}")
    h_inv = torch.linalg.inv(h.to(w.dtype))
    levels = grid.to(w.dtype).flatten()
    q = levels[(w[:, j, None] - levels[None, :]).abs().argmin(dim=1)]   # nearest grid value
    err = (w[:, j] - q) / h_inv[j, j]                                    # (d_out,)
    new = w - err[:, None] * h_inv[:, j][None, :]
    new[:, j] = q
    return new


def _gptq_cases():
    h2 = torch.tensor([[2.0, 1.5], [1.5, 2.0]], dtype=torch.float64)
    x = randn(12, 4, seed=21).double()
    h4 = 2 * x.T @ x / len(x)
    grid = torch.tensor([-1.0, -0.5, 0.0, 0.5, 1.0], dtype=torch.float64)
    return [
        Case((torch.tensor([[0.7, 0.2]], dtype=torch.float64), h2, 0, grid),
             note="two correlated weights: round w0 to 0.5, w1 takes over"),
        Case((torch.tensor([[0.7, 0.2]], dtype=torch.float64), h2, 1, grid),
             note="round column 1: column 0 (before it) moves too, h is of all free weights"),
        Case((randn(3, 4, seed=22).double(), h4, 2, grid), note="three rows, column 2"),
        Case((randn(2, 4, seed=23).double(), h4, 0,
              torch.tensor([-0.9, -0.2, 0.1, 0.8], dtype=torch.float64)),
             note="an uneven grid"),
        Case((randn(2, 4, seed=24).double(), torch.diag(torch.tensor(
            [1.0, 2.0, 3.0, 4.0], dtype=torch.float64)), 3, grid),
             note="a diagonal h: nothing to compensate with, the others stay"),
    ]


register(Exercise(
    id="ch6.gptq_column", title="One GPTQ step with a given Hessian", kind="function",
    section=PAGE, transfer=True, atol=1e-9, rtol=1e-9,
    prompt=("Write gptq_column(w, h, j, grid): round column j of w (d_out, d) to the nearest "
            "value of grid (1-D), then move all columns by the OBS update "
            "-(w_j - q_j) / [H^-1]_jj * H^-1[:, j] (h is the (d, d) Hessian of the free "
            "weights); return the new weights. Raise ValueError for a wrong h shape or j."),
    hint=("Invert h once. For each row the move is a multiple of column j of H^-1, with the "
          "factor chosen so that entry j lands exactly on q_j. Nearest grid value: argmin of "
          "|w_ij - grid| over the grid."),
    reference=gptq_column, cases=_gptq_cases,
    bad_cases=lambda: [
        Case((randn(2, 3).double(), torch.eye(4, dtype=torch.float64), 0,
              torch.tensor([0.0, 1.0])), note="h of the wrong size"),
        Case((randn(2, 3).double(), torch.eye(3, dtype=torch.float64), 3,
              torch.tensor([0.0, 1.0])), note="j out of range"),
    ],
    why=("Forcing weight $j$ to $q_j$ and letting the others minimise "
         "$\\tfrac12\\delta^\\top H\\delta$ gives, by the chapter's Lagrange argument, "
         "$\\delta = -\\frac{w_j - q_j}{[H^{-1}]_{jj}} H^{-1}_{:,j}$ for every row:\n\n"
         "```python\nh_inv = torch.linalg.inv(h)\n"
         "q = grid[(w[:, j, None] - grid[None, :]).abs().argmin(dim=1)]\n"
         "err = (w[:, j] - q) / h_inv[j, j]\n"
         "new = w - err[:, None] * h_inv[:, j][None, :]\n```\n\n"
         "Entry $j$ of the move is $-(w_j - q_j)$, so column $j$ lands on $q_j$ (set it "
         "exactly to avoid a last-bit error). With a diagonal $H$ the other entries of "
         "$H^{-1}_{:,j}$ are zero: uncorrelated inputs cannot compensate for each other, and "
         "GPTQ is rounding to nearest. Called with `j = 0` on the still-free columns and "
         "their Hessian `h[j:, j:]`, column after column, this is GPTQ itself (the "
         "exercise's test holds it to `course_lib.gptq.gptq_quantize`)."),
))


# ------------------------------------------------------------------ 5. why dampen
register(Exercise(
    id="ch6.why_damp", title="Why dampen the Hessian?", kind="choice", section=PAGE,
    prompt=("GPTQ and SparseGPT add 0.01 * mean(diag H) * I to H before inverting it. Why?"),
    hint="Look at what happens to H^-1, and to the update, when two inputs are copies.",
    reference="b",
    choices={
        "a": "It acts like weight decay: it pulls the compensated weights towards zero, so "
             "the compressed model generalises better.",
        "b": "It keeps every eigenvalue of H away from zero, so that the update, which "
             "multiplies by H^-1, exists and stays of reasonable size.",
        "c": "It makes the compensation more exact: the damped H fits the calibration inputs "
             "more closely, so the output error left after each update is smaller.",
        "d": "It refines the quantization grid, so that rounding errors are smaller.",
    },
    explanations={
        "a": "The damping term changes H, the curvature used for the compensation, not the "
             "weights' loss: nothing pulls a weight to zero.",
        "b": "Right: it keeps H invertible and the compensation bounded, at the price of a "
             "slightly less exact compensation.",
        "c": "The other way round: the damped H is no longer the true curvature of the "
             "calibration error, so the compensation is slightly less exact. That is the "
             "price paid for an inverse that exists and stays bounded.",
        "d": "The grid is set from the weights (min-max per row or group); H does not touch it.",
    },
    why=("The update is $-\\frac{w_j - q_j}{[H^{-1}]_{jj}} H^{-1}_{:,j}$: it needs $H^{-1}$. "
         "An input that is zero on every calibration token gives $H$ a zero row, and two "
         "inputs that are copies give it a zero eigenvalue: `cholesky` fails. When the copies "
         "differ only by noise, $H^{-1}$ exists but is huge along that direction, and the "
         "update moves weights by more than 100 to cancel an error that lives in the noise (the "
         "chapter measures it). Adding $\\lambda\\,\\overline{\\operatorname{diag} H}\\,I$ "
         "lifts every eigenvalue by that amount, so the inverse and the moves stay bounded; "
         "tying $\\lambda$ to the mean diagonal makes it follow the layer's scale."),
))
