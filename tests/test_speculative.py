"""Speculative decoding: greedy output identical to the target's, sampled output distributed
as the target's (chi-square against the exact probabilities), and the speed-up formulas."""

import pytest
import torch
from scipy.stats import chisquare

from course_lib import speculative
from course_lib.models import GPT, GPTConfig

pytestmark = pytest.mark.usefixtures("one_thread")

VOCAB = 6


def toy(seed, n_layer=2, sharpness=40.0):
    """A random GPT with a small vocabulary and peaked (not near-uniform) distributions."""
    torch.manual_seed(seed)
    m = GPT(GPTConfig(vocab_size=VOCAB, block_size=32, n_layer=n_layer, n_head=2, d_model=16))
    with torch.no_grad():
        m.lm_head.weight.mul_(sharpness)
    return m.eval()


@torch.no_grad()
def exact_two_token_probs(model, prompt, temperature=1.0):
    """P(first, second) of sampling two tokens from ``model`` after ``prompt``: (V, V)."""
    p1 = torch.softmax(model(prompt)[0][0, -1].double() / temperature, -1)
    rows = []
    for a in range(VOCAB):
        seq = torch.cat([prompt, torch.tensor([[a]])], 1)
        rows.append(p1[a] * torch.softmax(model(seq)[0][0, -1].double() / temperature, -1))
    return torch.stack(rows)


@pytest.mark.parametrize("k", [1, 2, 4, 7])
def test_greedy_identical_to_target(k):
    target, draft = toy(0), toy(1, n_layer=1)
    prompt = torch.tensor([[1, 2, 3]])
    for n in (1, 5, 20):
        out, stats = speculative.speculative_generate(target, draft, prompt, n, k=k)
        assert torch.equal(out, target.generate(prompt, n, temperature=0))
        assert stats.new_tokens == n and 0 <= stats.accepted <= stats.drafted
    # a perfect draft (the target itself) is always accepted: k + 1 tokens per target pass
    _, stats = speculative.speculative_generate(target, target, prompt, 20, k=k)
    assert stats.acceptance == 1.0
    assert stats.target_calls == -(-20 // (k + 1))


def test_sampled_distribution_is_the_targets():
    # a draft that agrees often but not always: the target with flatter output distributions
    target, draft = toy(0), toy(0, sharpness=15.0)
    prompt = torch.tensor([[1, 2, 3]])
    exact = exact_two_token_probs(target, prompt).flatten()
    draft_exact = exact_two_token_probs(draft, prompt).flatten()
    n = 600
    gen = torch.Generator().manual_seed(0)
    counts = torch.zeros(VOCAB * VOCAB)
    accepted = drafted = 0
    for _ in range(n):
        out, stats = speculative.speculative_generate(target, draft, prompt, 2, k=2,
                                                      temperature=1.0, generator=gen)
        counts[out[0, 3] * VOCAB + out[0, 4]] += 1
        accepted, drafted = accepted + stats.accepted, drafted + stats.drafted
    keep = exact * n >= 5  # chi-square needs expected counts of at least ~5 per cell
    expected = torch.cat([exact[keep], exact[~keep].sum(0, keepdim=True)]) * n
    observed = torch.cat([counts[keep], counts[~keep].sum(0, keepdim=True)])
    assert chisquare(observed.numpy(), expected.numpy()).pvalue > 1e-3
    # the test has power: the draft's own distribution is rejected
    draft_expected = torch.cat([draft_exact[keep], draft_exact[~keep].sum(0, keepdim=True)])
    assert chisquare(observed.numpy(), (draft_expected * n).numpy()).pvalue < 1e-6
    # and the draft is neither perfect nor useless here
    assert 0.2 < accepted / drafted < 0.95


def test_acceptance_matches_one_minus_total_variation():
    target, draft = toy(0), toy(1, n_layer=1)
    prompt = torch.tensor([[4, 0, 5]])
    with torch.no_grad():
        p = torch.softmax(target(prompt)[0][0, -1].double(), -1)
        q = torch.softmax(draft(prompt)[0][0, -1].double(), -1)
    alpha = float(speculative.acceptance_rate(p, q))
    assert alpha == pytest.approx(1 - 0.5 * float((p - q).abs().sum()))
    gen = torch.Generator().manual_seed(1)
    hits = sum(speculative.speculative_generate(target, draft, prompt, 1, k=1, temperature=1.0,
                                                generator=gen)[1].accepted for _ in range(400))
    assert abs(hits / 400 - alpha) < 4 * (alpha * (1 - alpha) / 400) ** 0.5 + 1e-9


def test_expected_formulas():
    assert speculative.expected_tokens_per_step(0.0, 4) == 1.0
    assert speculative.expected_tokens_per_step(1.0, 4) == 5.0
    assert speculative.expected_tokens_per_step(0.5, 2) == pytest.approx(1 + 0.5 + 0.25)
    assert speculative.expected_speedup(0.5, 2, 0.0) == pytest.approx(1.75)
    assert speculative.expected_speedup(0.5, 2, 0.5) == pytest.approx(1.75 / 2)


def test_bad_input():
    target, draft = toy(0), toy(1, n_layer=1)
    prompt = torch.tensor([[1, 2]])
    for k in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="k"):
            speculative.speculative_generate(target, draft, prompt, 3, k=k)
    with pytest.raises(ValueError, match="max_new_tokens"):
        speculative.speculative_generate(target, draft, prompt, 0)
    with pytest.raises(ValueError, match="temperature"):
        speculative.speculative_generate(target, draft, prompt, 3, temperature=-1)
    with pytest.raises(ValueError, match="temperature"):
        speculative.speculative_generate(target, draft, prompt, 3, temperature=float("nan"))
    with pytest.raises(ValueError, match="prompt"):
        speculative.speculative_generate(target, draft, torch.tensor([1, 2]), 3)
    with pytest.raises(ValueError, match="block_size"):
        speculative.speculative_generate(target, draft, prompt, 40)
    other = GPT(GPTConfig(vocab_size=VOCAB + 1, block_size=32, n_layer=1, n_head=2, d_model=16))
    with pytest.raises(ValueError, match="vocabulary"):
        speculative.speculative_generate(target, other, prompt, 3)
    with pytest.raises(ValueError, match="alpha"):
        speculative.expected_tokens_per_step(1.5, 2)
    with pytest.raises(ValueError, match="cost_ratio"):
        speculative.expected_speedup(0.5, 2, -1)


# ---- cases that reach every path of the algorithm (tools/mutants.py breaks it on purpose)
@pytest.mark.parametrize("draft_sharpness", [None, 15.0])
def test_sampled_distribution_is_the_targets_through_the_bonus_token(draft_sharpness):
    """k=1 and two new tokens: whenever the draft token is accepted, the second token is the
    bonus token, sampled from the target's distribution after it. With the target as its own
    draft every token is accepted, so the second token is always the bonus; with a flatter
    draft some first tokens come from the residual max(0, p - q) instead."""
    target = toy(0)
    draft = target if draft_sharpness is None else toy(0, sharpness=draft_sharpness)
    prompt = torch.tensor([[1, 2, 3]])
    exact_2d = exact_two_token_probs(target, prompt)
    exact = exact_2d.flatten()
    first = exact_2d.sum(1)
    independent = (first[:, None] * first[None, :]).flatten()   # second drawn like the first
    n = 600
    gen = torch.Generator().manual_seed(0)
    counts = torch.zeros(VOCAB * VOCAB)
    accepted = 0
    for _ in range(n):
        out, stats = speculative.speculative_generate(target, draft, prompt, 2, k=1,
                                                      temperature=1.0, generator=gen)
        counts[out[0, 3] * VOCAB + out[0, 4]] += 1
        accepted += stats.accepted
    if draft_sharpness is None:
        assert accepted == n                  # p / q = 1: every draft token is accepted
    else:
        assert 0.2 * n < accepted < 0.95 * n  # both the bonus and the residual paths run
    keep = exact * n >= 5

    def pooled(v):
        return torch.cat([v[keep], v[~keep].sum(0, keepdim=True)])

    assert chisquare(pooled(counts).numpy(), (pooled(exact) * n).numpy()).pvalue > 1e-3
    # power: the two-token distribution is far from two independent first tokens
    assert chisquare(pooled(counts).numpy(), (pooled(independent) * n).numpy()).pvalue < 1e-6


def test_acceptance_rate_is_per_row_on_a_batch():
    p = torch.tensor([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5]], dtype=torch.float64)
    q = torch.tensor([[0.25, 0.25, 0.5], [0.2, 0.3, 0.5]], dtype=torch.float64)
    # row 1: min = (0.25, 0.25, 0) sums to 0.5; row 2: p == q, always accepted
    torch.testing.assert_close(speculative.acceptance_rate(p, q),
                               torch.tensor([0.5, 1.0], dtype=torch.float64))


# ---- one verification step on given distributions (the rule the chapter writes inline)
def test_verify_draft_first_token_is_distributed_as_the_target():
    """k = 1: the first output token is the accepted draft token or a residual sample, so it
    follows p whatever q is; with the bonus token the step yields two tokens exactly when the
    draft token is accepted, which happens with probability sum min(p, q)."""
    p = torch.tensor([0.5, 0.2, 0.2, 0.1], dtype=torch.float64)
    q = torch.tensor([0.3, 0.5, 0.1, 0.1], dtype=torch.float64)
    logits = torch.stack([p.log(), torch.tensor([0.0, 0.0, 0.0, 5.0], dtype=torch.float64)])
    gen = torch.Generator().manual_seed(0)
    n, counts, accepted = 4000, torch.zeros(4), 0
    for _ in range(n):
        token = int(torch.multinomial(q, 1, generator=gen))
        n_acc, nxt = speculative.verify_draft(logits, q[None], [token], generator=gen)
        counts[token if n_acc else nxt] += 1
        accepted += n_acc
    assert chisquare(counts.numpy(), (p * n).numpy()).pvalue > 1e-3
    assert chisquare(counts.numpy(), (q * n).numpy()).pvalue < 1e-6       # power: not q
    # accepted ~ Binomial(n, 0.7): within 4 standard deviations
    assert abs(accepted - 0.7 * n) < 4 * (n * 0.7 * 0.3) ** 0.5


def test_verify_draft_is_the_rule_speculative_generate_runs():
    # a draft identical to the target accepts everything, and the bonus comes from the last row
    logits = torch.tensor([[0.0, 9.0, 0.0], [9.0, 0.0, 0.0], [0.0, 0.0, 30.0]],
                          dtype=torch.float64)
    q = torch.softmax(logits[:2], -1)
    assert speculative.verify_draft(logits, q, [1, 0]) == (2, 2)
    # a proposal the target gives (numerically) zero probability is always rejected, and the
    # residual then cannot return it
    logits = torch.tensor([[50.0, -50.0], [0.0, 0.0]], dtype=torch.float64)
    q = torch.tensor([[0.5, 0.5]], dtype=torch.float64)
    assert speculative.verify_draft(logits, q, [1]) == (0, 0)


@pytest.mark.parametrize("args, match", [
    ((torch.zeros(2, 3), torch.full((1, 3), 1 / 3), []), "proposal"),
    ((torch.zeros(2, 3), torch.full((1, 3), 1 / 3), [1.0]), "proposal"),
    ((torch.zeros(3, 3), torch.full((1, 3), 1 / 3), [1]), r"\(k \+ 1, V\)"),
    ((torch.zeros(2, 3), torch.full((1, 4), 1 / 4), [1]), r"\(k, V\)"),
    ((torch.zeros(2, 3), torch.full((1, 3), 0.5), [1]), "summing to 1"),
    ((torch.zeros(2, 3), torch.full((1, 3), 1 / 3), [3]), "outside"),
    ((torch.zeros(2, 3), torch.tensor([[0.5, 0.5, 0.0]]), [2]), "probability 0"),
])
def test_verify_draft_rejects_bad_input(args, match):
    with pytest.raises((ValueError, TypeError), match=match):
        speculative.verify_draft(*args)
    with pytest.raises(ValueError, match="temperature"):
        speculative.verify_draft(torch.zeros(2, 3), torch.full((1, 3), 1 / 3), [1],
                                 temperature=0)
