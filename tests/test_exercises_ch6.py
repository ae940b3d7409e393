"""Exercises of page 6: every one has plausible wrong answers that fail with a useful
message, and the solutions agree with the course's own code."""

import math

import torch
import torch.nn.functional as F  # noqa: F401

from course_lib.exercises import get, list_exercises, solution

PAGE = 6


def _prune_global(weight, sparsity):
    k = int(sparsity * weight.numel())
    if k == 0:
        return weight.clone()
    thr = weight.abs().flatten().kthvalue(k).values
    return torch.where(weight.abs() <= thr, torch.zeros_like(weight), weight)


def _prune_round_up(weight, sparsity):
    k = math.ceil(sparsity * weight.shape[1] + 1e-9)
    out = weight.clone()
    if k:
        out.scatter_(1, weight.abs().argsort(1)[:, :k], 0.0)
    return out


def _nm_keep(weight, score, n, m):
    g = score.reshape(weight.shape[0], -1, m)
    keep = g.topk(n, -1).indices
    return weight * torch.zeros_like(g, dtype=torch.bool).scatter(-1, keep, True).reshape(
        weight.shape)


def _wanda_magnitude_only(weight, inputs, n, m):      # forgets the inputs
    return _nm_keep(weight, weight.abs(), n, m)


def _wanda_keeps_m_minus_n(weight, inputs, n, m):     # reads N:M as "prune n of m"
    return _nm_keep(weight, weight.abs() * inputs.norm(dim=0), m - n, m)


def _gptq_no_compensation(w, h, j, grid):             # rounding to nearest
    new = w.clone()
    new[:, j] = grid[(w[:, j, None] - grid[None, :]).abs().argmin(1)]
    return new


def _gptq_with_h_not_inverse(w, h, j, grid):          # H where H^-1 belongs
    q = grid[(w[:, j, None] - grid[None, :]).abs().argmin(1)]
    new = w - ((w[:, j] - q) / h[j, j])[:, None] * h[:, j][None, :]
    new[:, j] = q
    return new


def _gptq_later_columns_only(w, h, j, grid):          # as if the columns before were fixed
    h_inv = torch.linalg.inv(h)
    q = grid[(w[:, j, None] - grid[None, :]).abs().argmin(1)]
    new = w.clone()
    new[:, j:] -= ((w[:, j] - q) / h_inv[j, j])[:, None] * h_inv[j:, j][None, :]
    new[:, j] = q
    return new


WRONG = {
    "ch6.magnitude_prune": [_prune_global, _prune_round_up],
    "ch6.obs_choice": [3, 0],            # the smallest |w|; the smallest w^2 H_jj
    "ch6.wanda_n_m": [_wanda_magnitude_only, _wanda_keeps_m_minus_n],
    "ch6.gptq_column": [_gptq_no_compensation, _gptq_with_h_not_inverse,
                        _gptq_later_columns_only],
    "ch6.why_damp": ["a", "c"],
}


def test_the_page_has_five_exercises_three_of_them_transfer():
    ids = list_exercises(PAGE)
    assert len(ids) == 5
    assert sum(get(i).transfer for i in ids) == 3


def test_solutions_match_course_lib():
    from course_lib import prune

    w = torch.randn(6, 20)
    for sparsity in (0.0, 0.3, 0.55, 0.9):
        assert torch.equal(solution("ch6.magnitude_prune")(w, sparsity),
                           prune.magnitude_prune(w, sparsity))
    x = torch.randn(30, 24)
    w = torch.randn(5, 24)
    for n, m in [(2, 4), (1, 4), (4, 8), (2, 3)]:
        assert torch.equal(solution("ch6.wanda_n_m")(w, x, n, m),
                           prune.wanda_prune(w, x, 1 - n / m, n_m=(n, m)))


def test_obs_choice_agrees_with_a_brute_force_minimisation():
    # independent of the closed form: for each j, fix w_j = 0 and solve for the best move of
    # the free weights (H_FF delta_F = -H_Fj delta_j), then compare the losses
    from course_lib.exercises.ch6 import OBS_H, OBS_W

    h, w = torch.tensor(OBS_H, dtype=torch.float64), torch.tensor(OBS_W, dtype=torch.float64)
    costs = []
    for j in range(len(w)):
        free = [k for k in range(len(w)) if k != j]
        delta = torch.zeros_like(w)
        delta[j] = -w[j]
        delta[free] = torch.linalg.solve(h[free][:, free], -h[free, j] * delta[j])
        costs.append(float(0.5 * delta @ h @ delta))
    assert solution("ch6.obs_choice") == min(range(len(w)), key=costs.__getitem__)
    assert sorted(costs)[1] > 1.2 * sorted(costs)[0]   # a clear winner, not a near tie


def test_gptq_column_column_by_column_is_gptq():
    # gptq_column with j = 0 on the still-free columns and their Hessian, repeated, is GPTQ
    # (no damping, one row so that the row's grid is the exercise's grid)
    from course_lib import gptq

    gen = torch.Generator().manual_seed(0)
    base = torch.randn(64, 1, generator=gen, dtype=torch.float64)
    x = base + 0.3 * torch.randn(64, 8, generator=gen, dtype=torch.float64)  # correlated
    w = torch.randn(1, 8, generator=gen, dtype=torch.float64)
    bits = 3
    scale, zero = gptq.grid_params(w, bits)
    grid = (torch.arange(2**bits, dtype=torch.float64) - zero[0, 0]) * scale[0, 0]
    h = gptq.hessian(x)
    step = solution("ch6.gptq_column")
    cur = w.clone()
    for j in range(w.shape[1]):
        cur[:, j:] = step(cur[:, j:], h[j:, j:], 0, grid)
    ref = gptq.gptq_quantize(w, x, bits, damp=0.0, block_size=2)
    torch.testing.assert_close(cur, ref, rtol=0, atol=1e-10)
    rtn = gptq.rtn_quantize(w, bits)                   # the compensation mattered:
    assert gptq.layer_error(w, ref, x) < 0.5 * gptq.layer_error(w, rtn, x)
