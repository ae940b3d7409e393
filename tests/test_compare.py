import math

import pytest
import torch

from course_lib import compare
from course_lib.evaluate import paired_bootstrap
from course_lib.models import GPT, GPTConfig
from course_lib.train import evaluate


@pytest.fixture(scope="module")
def gpt():
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=40, block_size=8, n_layer=1, n_heads=2, d_model=16)).eval()


@pytest.fixture(scope="module")
def tokens():
    return torch.randint(40, (8 * 7 + 3,), generator=torch.Generator().manual_seed(1))


def test_window_losses_are_each_windows_loss_and_average_to_evaluate(gpt, tokens):
    losses = compare.window_losses(gpt, tokens)
    assert losses.dtype == torch.float64 and losses.shape == (7,)
    for i in (0, 3, 6):  # window i: inputs tokens[8i: 8i+8], targets shifted by one
        one = evaluate(gpt, tokens[8 * i: 8 * i + 9])
        assert losses[i].item() == pytest.approx(one, rel=1e-5)
    # equal windows: the mean of the window losses is the loss over all of them
    assert losses.mean().item() == pytest.approx(evaluate(gpt, tokens), rel=1e-5)
    torch.testing.assert_close(compare.window_losses(gpt, tokens, batch_size=3), losses,
                               rtol=1e-6, atol=0)
    assert compare.window_losses(gpt, tokens, block_size=4).shape == (14,)


def test_window_accuracies_count_argmax_hits(gpt, tokens):
    acc = compare.window_accuracies(gpt, tokens)
    with torch.no_grad():
        x, y = tokens[:56].view(7, 8), tokens[1:57].view(7, 8)
        want = (gpt(x)[0].argmax(-1) == y).double().mean(dim=1)
    assert torch.equal(acc, want)  # exact: counting the same argmax
    assert ((acc * 8) == (acc * 8).round()).all()


def test_window_functions_reject_bad_input_and_restore_training_mode(gpt, tokens):
    with pytest.raises(TypeError, match="window_losses: tokens"):
        compare.window_losses(gpt, tokens.float())
    with pytest.raises(ValueError, match="window_losses: tokens"):
        compare.window_losses(gpt, tokens[:8])
    with pytest.raises(ValueError, match="window_accuracies: block_size"):
        compare.window_accuracies(gpt, tokens, block_size=9)
    with pytest.raises(ValueError, match="window_losses: batch_size"):
        compare.window_losses(gpt, tokens, batch_size=0)
    gpt.train()
    compare.window_losses(gpt, tokens)
    assert gpt.training
    gpt.eval()


def test_ppl_ratio_is_exp_of_the_paired_bootstrap():
    g = torch.Generator().manual_seed(0)
    a = 3 + 0.1 * torch.randn(50, generator=g, dtype=torch.float64)
    b = a + 0.05 + 0.02 * torch.randn(50, generator=g, dtype=torch.float64)
    ratio, low, high = compare.ppl_ratio(a, b)
    mean, lo, hi = paired_bootstrap(a, b)
    assert (ratio, low, high) == (math.exp(mean), math.exp(lo), math.exp(hi))
    # the ratio of perplexities, exp(mean a) / exp(mean b)
    assert ratio == pytest.approx(math.exp(a.mean().item() - b.mean().item()), rel=1e-12)
    assert low < ratio < high < 1  # B's losses are higher by 0.05 +- 0.02: A is better
    # a constant shift: every resample has the same mean difference, zero-width interval
    r2 = compare.ppl_ratio(a + 0.1, a)
    assert r2[0] == pytest.approx(math.exp(0.1)) and r2[1] == pytest.approx(r2[2])
    assert compare.ppl_ratio(a, a) == (1.0, 1.0, 1.0)


def test_ppl_ratio_rejects_bad_input():
    with pytest.raises(ValueError, match="ppl_ratio: a_losses"):
        compare.ppl_ratio(torch.zeros(3, 2), torch.zeros(3))
    with pytest.raises(ValueError, match="same items"):
        compare.ppl_ratio(torch.zeros(3), torch.zeros(4))
    with pytest.raises(ValueError, match="finite"):
        compare.ppl_ratio(torch.tensor([1.0, float("nan")]), torch.zeros(2))

