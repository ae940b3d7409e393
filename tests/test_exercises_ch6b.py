"""Exercises of page 6b: every one has plausible wrong answers that fail with a useful
message, and the solutions agree with the course's own code."""

import pytest
import torch
import torch.nn.functional as F

from course_lib.exercises import get, list_exercises, solution

PAGE = "6b"


def _distill_no_t_squared(s, t, y, temperature, alpha):
    log_p_t = F.log_softmax(t / temperature, -1)
    kl = (log_p_t.exp() * (log_p_t - F.log_softmax(s / temperature, -1))).sum(-1).mean()
    return alpha * kl + (1 - alpha) * F.cross_entropy(s, y)


def _distill_kl_reversed(s, t, y, temperature, alpha):
    log_p_s = F.log_softmax(s / temperature, -1)
    kl = (log_p_s.exp() * (log_p_s - F.log_softmax(t / temperature, -1))).sum(-1).mean()
    return alpha * temperature**2 * kl + (1 - alpha) * F.cross_entropy(s, y)


def _distill_teacher_not_softened(s, t, y, temperature, alpha):
    log_p_t = F.log_softmax(t, -1)
    kl = (log_p_t.exp() * (log_p_t - F.log_softmax(s / temperature, -1))).sum(-1).mean()
    return alpha * temperature**2 * kl + (1 - alpha) * F.cross_entropy(s, y)


def _emit_no_min(p, q, x):            # p(x)/q(x) as a probability, even above 1
    a = float(p[x] / q[x])
    residual = (p - q).clamp(min=0)
    out = (1 - a) * residual / residual.sum() if residual.sum() > 0 else torch.zeros_like(p)
    out[x] += a
    return out


def _emit_rejection_from_p(p, q, x):    # on a rejection, sample the target itself
    a = min(1.0, float(p[x] / q[x]))
    out = (1 - a) * p.clone()
    out[x] += a
    return out


def _emit_marginal(p, q, x):            # "the output is distributed as p", read per proposal
    return p.clone()


def _swiglu_two_matrices(d_model, d_ff, h, n_layers=1, bytes_per_param=2.0):
    params = n_layers * 2 * d_model * (d_ff - h)      # the page's GPT MLP, without biases
    return params, params * bytes_per_param


def _swiglu_removed(d_model, d_ff, h, n_layers=1, bytes_per_param=2.0):
    params = n_layers * 3 * d_model * h              # what was removed, not what is kept
    return params, params * bytes_per_param


def _swiglu_bits(d_model, d_ff, h, n_layers=1, bytes_per_param=2.0):
    params = n_layers * 3 * d_model * (d_ff - h)
    return params, params * bytes_per_param * 8      # bits, not bytes


WRONG = {
    "ch6b.distill_loss": [_distill_no_t_squared, _distill_kl_reversed,
                          _distill_teacher_not_softened],
    "ch6b.spec_accept": [_emit_no_min, _emit_rejection_from_p, _emit_marginal],
    "ch6b.spec_tokens": [2.646, 2.2248, 3.7],  # one mean alpha; no final token; 1 + sum
    "ch6b.spec_rule": ["a", "c", "d"],
    "ch6b.prune_count": [_swiglu_two_matrices, _swiglu_removed, _swiglu_bits],
}


def test_at_least_three_are_transfer_problems_and_every_one_explains_itself():
    exs = [get(i) for i in list_exercises(PAGE)]
    assert sum(ex.transfer for ex in exs) >= 3
    assert all(ex.why for ex in exs)


def test_distill_loss_solution_matches_course_lib():
    from course_lib import distill

    gen = torch.Generator().manual_seed(0)
    for temperature, alpha in ((1.0, 0.0), (2.0, 0.5), (4.0, 1.0), (8.0, 0.3)):
        s = torch.randn(5, 7, generator=gen)
        t = 3 * torch.randn(5, 7, generator=gen)
        y = torch.randint(7, (5,), generator=gen)
        torch.testing.assert_close(solution("ch6b.distill_loss")(s, t, y, temperature, alpha),
                                   distill.distillation_loss(s, t, y, temperature, alpha))


def test_spec_accept_solution_averages_to_p_and_matches_course_lib():
    from course_lib import speculative

    emit = solution("ch6b.spec_accept")
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        p = torch.softmax(2 * torch.randn(9, generator=gen, dtype=torch.float64), -1)
        q = torch.softmax(2 * torch.randn(9, generator=gen, dtype=torch.float64), -1)
        outs = [emit(p, q, x) for x in range(9)]
        # averaged over the proposal x ~ q, the emitted token is distributed as p
        torch.testing.assert_close(sum(q[x] * outs[x] for x in range(9)), p)
        # and the mass left on x is its acceptance probability: its q-average is the rate
        rate = sum(q[x] * outs[x][x] for x in range(9))
        assert float(rate) == pytest.approx(speculative.acceptance_rate(p, q).item(), abs=1e-12)


def test_spec_accept_solution_matches_the_library_rule_by_sampling():
    # one proposed token, verified by course_lib's rule many times: the emitted token is the
    # proposal when accepted, else the residual sample; its frequencies follow the solution
    from course_lib import speculative

    p = torch.tensor([0.5, 0.2, 0.2, 0.1], dtype=torch.float64)
    q = torch.tensor([[0.3, 0.5, 0.1, 0.1]], dtype=torch.float64)
    logits = torch.log(torch.stack([p, p]))          # (k + 1, V): the target at 2 positions
    gen = torch.Generator().manual_seed(0)
    n, counts = 4000, torch.zeros(4, dtype=torch.float64)
    for _ in range(n):
        accepted, token = speculative.verify_draft(logits, q, [1], generator=gen)
        counts[1 if accepted else token] += 1
    expected = solution("ch6b.spec_accept")(p, q[0], 1)          # (0.4, 0.4, 0.2, 0)
    assert (counts / n - expected).abs().max() < 0.03            # about 4 standard errors


def test_spec_tokens_solution_is_the_geometric_formula_when_acceptance_is_constant():
    from course_lib import speculative
    from course_lib.exercises.ch6b import SPEC_ALPHAS, _tokens_per_pass

    assert solution("ch6b.spec_tokens") == _tokens_per_pass(SPEC_ALPHAS)
    assert solution("ch6b.spec_tokens").reference == pytest.approx(3.2248)
    for alpha, k in ((0.8, 4), (0.5, 1), (0.95, 7)):
        assert _tokens_per_pass([alpha] * k) == pytest.approx(
            speculative.expected_tokens_per_step(alpha, k))


def test_spec_rule_answer_matches_the_output_distribution_of_the_changed_rule():
    p = torch.tensor([0.5, 0.2, 0.2, 0.1], dtype=torch.float64)
    q = torch.tensor([0.3, 0.5, 0.1, 0.1], dtype=torch.float64)
    accepted = torch.where(p >= q, q, torch.zeros_like(q))
    residual = (p - q).clamp(min=0)
    out = accepted + (1 - accepted.sum()) * residual / residual.sum()
    assert out[1] == 0 and not torch.allclose(out, p)       # (b): B is never output
    assert solution("ch6b.spec_rule") == "b"


def test_prune_count_solution_matches_a_pruned_module():
    # remove h hidden units from a real gated MLP and count what is left
    d_model, d_ff, h = 16, 48, 20
    keep = torch.arange(d_ff - h)
    gate = torch.nn.Linear(d_model, d_ff, bias=False)
    up = torch.nn.Linear(d_model, d_ff, bias=False)
    down = torch.nn.Linear(d_ff, d_model, bias=False)
    kept = [gate.weight[keep], up.weight[keep], down.weight[:, keep]]
    n = sum(w.numel() for w in kept)
    assert solution("ch6b.prune_count")(d_model, d_ff, h, 1, 4) == (n, 4 * n)
