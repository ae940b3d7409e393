"""Exercises of page 5b: every one has plausible wrong answers that fail with a useful
message, and the solutions agree with the course's own code (or autograd, or sampling)."""

import math

import torch
import torch.nn.functional as F

from course_lib.exercises import get, list_exercises, solution

PAGE = "5b"


def _bt_no_mean(rc, rr):                       # forgets that the loss is a mean over pairs
    push = torch.sigmoid(rr - rc)
    return -push, push


def _bt_wrong_sigmoid(rc, rr):                 # sigma(d) instead of sigma(-d)
    push = torch.sigmoid(rc - rr) / len(rc)
    return -push, push


def _bt_sign(rc, rr):                          # descends the wrong way: the loss's negative
    push = torch.sigmoid(rr - rc) / len(rc)
    return push, -push


def _rf_no_baseline(logits, samples, rewards):
    score = F.one_hot(samples, len(logits)).float() - torch.softmax(logits, 0)
    return (rewards[:, None] * score).mean(0)


def _rf_no_softmax_term(logits, samples, rewards):   # d log pi / d logits taken as onehot
    return (rewards[:, None] * F.one_hot(samples, len(logits)).float()).mean(0)


def _rf_loss_gradient(logits, samples, rewards):    # the gradient of the loss, not of E[r]
    score = F.one_hot(samples, len(logits)).float() - torch.softmax(logits, 0)
    return -((rewards - rewards.mean())[:, None] * score).mean(0)


WRONG = {
    "ch5b.bt_gradient": [_bt_no_mean, _bt_wrong_sigmoid, _bt_sign],
    "ch5b.bon_samples": [10, 5, 4.5],          # log ratio rounded down; 0.9 / 0.2 read linearly
    "ch5b.reinforce_grad": [_rf_no_baseline, _rf_no_softmax_term, _rf_loss_gradient],
    "ch5b.fresh_prompts": ["a", "c", "d"],
    "ch5b.implicit_margin": [0.3, -3.0, 0.2],  # swapped; no beta; the reference ignored
}


def test_page_order_and_transfer_share():
    assert list_exercises(PAGE) == list(WRONG)
    assert sum(get(i).transfer for i in WRONG) >= 3


def test_bt_gradient_is_autograds_gradient_of_the_course_loss():
    from course_lib import align

    rc = (torch.randn(7, generator=torch.Generator().manual_seed(0)) * 3).requires_grad_()
    rr = (torch.randn(7, generator=torch.Generator().manual_seed(1)) * 3).requires_grad_()
    align.reward_model_loss(rc, rr).backward()
    gc, gr = solution("ch5b.bt_gradient")(rc.detach(), rr.detach())
    assert torch.allclose(gc, rc.grad, atol=1e-7) and torch.allclose(gr, rr.grad, atol=1e-7)
    assert torch.allclose(gc + gr, torch.zeros(7))          # only the difference is learned


def test_bon_samples_against_the_best_of_n_formula_and_sampling():
    n = solution("ch5b.bon_samples").reference
    q = torch.tensor([0.8, 0.2], dtype=torch.float64)         # wrong, right: by reward
    F_ = q.cumsum(0)

    def p_right(m):                                             # the page's best_of_n
        return float((F_ ** m - (F_ - q) ** m)[1])

    assert p_right(n) >= 0.9 > p_right(n - 1)
    gen = torch.Generator().manual_seed(0)                     # and by sampling: 20,000 runs
    draws = torch.rand(20_000, n, generator=gen) < 0.2
    assert abs(float(draws.any(dim=1).double().mean()) - p_right(n)) < 0.01


def test_reinforce_grad_is_autograds_gradient_of_the_surrogate():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(4, generator=gen, dtype=torch.float64).requires_grad_()
    samples = torch.randint(0, 4, (9,), generator=gen)
    rewards = torch.randn(9, generator=gen, dtype=torch.float64)
    advantage = rewards - rewards.mean()
    (advantage * torch.log_softmax(logits, 0)[samples]).mean().backward()
    got = solution("ch5b.reinforce_grad")(logits.detach(), samples, rewards)
    assert torch.allclose(got, logits.grad, atol=1e-12)


def test_reinforce_grad_is_unbiased():
    # averaged over many batches the estimate approaches the exact gradient of E[r]
    logits = torch.tensor([0.3, -0.2, 0.0], dtype=torch.float64, requires_grad=True)
    r = torch.tensor([1.0, 0.0, 2.0], dtype=torch.float64)
    (torch.softmax(logits, 0) @ r).backward()
    gen = torch.Generator().manual_seed(1)
    probs = torch.softmax(logits.detach(), 0)
    est = torch.stack([solution("ch5b.reinforce_grad")(
        logits.detach(), s, r[s]) for s in torch.multinomial(
            probs.expand(4000, 3), 16, replacement=True, generator=gen)]).mean(0)
    # the batch-mean baseline shrinks the expectation by (N-1)/N (the page says so)
    assert torch.allclose(est, logits.grad * 15 / 16, atol=0.01)


def test_implicit_margin_matches_dpo_loss():
    from course_lib import align

    margin = solution("ch5b.implicit_margin").reference
    loss = align.dpo_loss(torch.tensor([-4.0]), torch.tensor([-6.0]), torch.tensor([-3.0]),
                          torch.tensor([-8.0]), beta=0.1)
    assert math.isclose(float(loss), -math.log(1 / (1 + math.exp(-margin))), rel_tol=1e-6)


def test_fresh_prompts_worked_answer_numbers_and_the_winners_curse():
    from course_lib.evaluate import wilson_interval

    low, high = wilson_interval(186, 300)                   # 62 % of 300
    assert round(100 * (high - low) / 2, 1) == 5.5          # "about +-5.5 points"
    # twenty runs of the same true accuracy: the best score overstates it
    g = torch.Generator().manual_seed(0)
    scores = torch.binomial(torch.full((2000, 20), 300.0), torch.full((2000, 20), 0.62),
                            generator=g) / 300
    assert abs(float(scores.mean()) - 0.62) < 0.005         # one run's score: unbiased
    assert float(scores.max(dim=1).values.mean()) > 0.62 + 0.03   # the best of 20: not
    assert solution("ch5b.fresh_prompts") == "b"
