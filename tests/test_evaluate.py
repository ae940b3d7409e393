import math

import numpy as np
import pytest
import torch

from course_lib import data, evaluate
from course_lib.models import load_pretrained


@pytest.fixture(scope="module")
def gpt():
    return load_pretrained("tiny-gpt")


def test_perplexity_is_exp_of_the_training_loss_and_near_the_record(gpt):
    from course_lib.train import evaluate as mean_loss

    tok = gpt.tokenizer
    ids = torch.tensor(tok.encode(data.corpus_text("val")[:6000]))
    ppl = evaluate.perplexity(gpt, ids)
    assert ppl == pytest.approx(math.exp(mean_loss(gpt, ids)), rel=1e-5)
    assert ppl == pytest.approx(gpt.meta["val_perplexity"], rel=0.05)
    assert evaluate.perplexity(gpt, ids, max_windows=1) == pytest.approx(
        math.exp(mean_loss(gpt, ids, max_batches=1, batch_size=1)), rel=1e-5)
    with pytest.raises(ValueError, match="more than"):
        evaluate.perplexity(gpt, ids[:10])
    with pytest.raises(TypeError):
        evaluate.perplexity(gpt, ids.float())


def test_exact_match_normalizes_and_checks_lengths():
    assert evaluate.exact_match(["Tom.", " the CAT", "dog"], ["tom", "the cat", "fox"]) == \
        pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="2 predictions"):
        evaluate.exact_match(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="empty"):
        evaluate.exact_match([], [])
    with pytest.raises(TypeError):
        evaluate.exact_match("abc", "abc")


def test_teacher_forced_check_agrees_with_greedy_generation(gpt):
    from course_lib.align import END, format_chat

    tok = gpt.tokenizer
    examples = data.instruction_examples(6, "test")
    # make one reference equal to what the model actually generates, so both outcomes occur
    prompt = tok.encode(format_chat(examples[0]["instruction"]))
    out = gpt.generate(torch.tensor([prompt]), 3, temperature=0)[0, len(prompt):].tolist()
    examples[0] = dict(examples[0], response=tok.decode(out[:2]).strip())
    matches = evaluate.greedy_answers_match(gpt, tok, examples)
    for e, match in zip(examples, matches):
        prompt = tok.encode(format_chat(e["instruction"]))
        want = tok.encode(" " + e["response"] + END)
        gen = gpt.generate(torch.tensor([prompt]), len(want), temperature=0)
        assert match == (gen[0, len(prompt):].tolist() == want)


def test_multiple_choice_length_normalisation():
    class Fixed(torch.nn.Module):  # every token has probability 1/2 under this "model"
        def forward(self, x):
            return torch.zeros(*x.shape, 2), None

    items = [{"context_ids": [0], "choices_ids": [[1], [1, 1, 1]], "answer": 1}]
    scores = evaluate.choice_logprobs(Fixed(), [0], [[1], [1, 1, 1]])
    assert scores[0] == (pytest.approx(math.log(0.5)), 1)
    assert scores[1] == (pytest.approx(3 * math.log(0.5)), 3)
    # summed: the short choice wins; per token: a tie, broken toward the first
    assert evaluate.multiple_choice_accuracy(Fixed(), items, normalize=False) == 0.0
    with pytest.raises(ValueError):
        evaluate.choice_logprobs(Fixed(), [], [[1]])


def test_pairwise_judge_and_win_rate():
    def biased(q, a, b):
        return 1.0, 0.0  # always prefers whichever answer is shown first
    assert evaluate.pairwise_judge(biased, "q", "x", "y") == 0
    assert evaluate.pairwise_judge(biased, "q", "y", "x") == 0    # contradicts itself
    assert evaluate.win_rate([0, 0, 1, 0]) == 0.75
    with pytest.raises(ValueError):
        evaluate.win_rate([0, 2])
    with pytest.raises(ValueError, match="pairwise_judge: .*(NaN|finite)"):
        evaluate.pairwise_judge(lambda q, a, b: (float("nan"), 0.0), "q", "a", "b")


def test_ngram_contamination():
    train = ["the quick brown fox jumps over the lazy dog"]
    test = ["a quick brown fox jumps high", "nothing in common here at all"]
    assert evaluate.ngram_contamination(train, test, n=4) == 0.5
    assert evaluate.ngram_contamination(train, test, n=5) == 0.0
    with pytest.raises(ValueError):
        evaluate.ngram_contamination([], test)
    with pytest.raises(ValueError, match="n must"):
        evaluate.ngram_contamination(train, test, n=0)


def test_normalize_answer_drops_articles_as_whole_words_like_squad():
    assert evaluate.normalize_answer("The Fox.") == evaluate.normalize_answer("fox") == "fox"
    assert evaluate.normalize_answer("an apple") == "apple"
    assert evaluate.normalize_answer("  A  cat, THE dog!") == "cat dog"
    # only whole words: these keep their leading "the", "a" and "an"
    assert evaluate.normalize_answer("theory") == "theory"
    assert evaluate.normalize_answer("Anna ate a banana") == "anna ate banana"
    assert evaluate.normalize_answer("then, an answer") == "then answer"
    # punctuation goes first (as in SQuAD's script), so a hyphen joins the words
    assert evaluate.normalize_answer("the-cat") == "thecat"
    assert evaluate.normalize_answer("The a an.") == ""
    assert evaluate.exact_match(["The Fox.", "an apple", "theory"], ["fox", "apple", "ory"]) \
        == pytest.approx(2 / 3)
    with pytest.raises(TypeError, match="normalize_answer"):
        evaluate.normalize_answer(None)


def test_ngram_contamination_counts_articles():
    # the overlap check reads the words as written: dropping articles would flag this
    assert evaluate.ngram_contamination(["the cat sat on the mat"], ["cat sat on mat"], 4) == 0


# ---- uncertainty: each held to scipy.stats ----------------------------------------------------

def test_wilson_interval_matches_scipy():
    from scipy.stats import binomtest

    cases = [(0, 1), (1, 1), (0, 10), (10, 10), (1, 10), (3, 10), (9, 10), (50, 100),
             (1, 1000), (999, 1000), (123_456, 1_000_000)]
    for k, n in cases:
        for confidence in (0.5, 0.9, 0.95, 0.99):
            want = binomtest(k, n).proportion_ci(confidence, method="wilson")
            low, high = evaluate.wilson_interval(k, n, confidence)
            assert (low, high) == (pytest.approx(want.low, rel=1e-12, abs=1e-15),
                                   pytest.approx(want.high, rel=1e-12, abs=1e-15)), (k, n)
            assert 0 <= low <= k / n <= high <= 1
    # exact at the edges: no successes can't rule out p = 0; all can't rule out p = 1
    assert evaluate.wilson_interval(0, 10)[0] == 0.0 and evaluate.wilson_interval(10, 10)[1] == 1.0
    # where the normal (Wald) interval fails: p +- z sqrt(p(1-p)/n) has zero width at 0/10
    # and reaches below 0 at 1/10; Wilson does neither
    assert evaluate.wilson_interval(0, 10)[1] == pytest.approx(0.27753279986, rel=1e-9)
    assert evaluate.wilson_interval(1, 10) == (pytest.approx(0.01787621310, rel=1e-9),
                                               pytest.approx(0.40415002680, rel=1e-9))
    assert evaluate.wilson_interval(np.int64(3), np.int64(10)) == evaluate.wilson_interval(3, 10)


def test_wilson_interval_rejects_bad_input():
    for args, err, name in [((11, 10), ValueError, "successes"), ((-1, 10), ValueError,
                                                                   "successes"),
                            ((0, 0), ValueError, "n"), ((1, -5), ValueError, "n"),
                            ((2.5, 10), TypeError, "successes"), ((2, 10.0), TypeError, "n"),
                            ((True, 10), TypeError, "successes"), ((1, True), TypeError, "n"),
                            ((float("nan"), 10), TypeError, "successes"),
                            ((1, 10**30), ValueError, "n"), (("3", 10), TypeError, "successes"),
                            ((np.bool_(True), 10), TypeError, "successes")]:
        with pytest.raises(err, match=f"wilson_interval: {name}"):
            evaluate.wilson_interval(*args)
    for confidence in (0, 1, 1.5, -0.1, float("nan")):
        with pytest.raises(ValueError, match="wilson_interval: confidence"):
            evaluate.wilson_interval(3, 10, confidence)
    for confidence in ("0.95", True, None):
        with pytest.raises(TypeError, match="wilson_interval: confidence"):
            evaluate.wilson_interval(3, 10, confidence)


def _scored(only_a, only_b, both=0, neither=0):
    a = [1] * only_a + [0] * only_b + [1] * both + [0] * neither
    b = [0] * only_a + [1] * only_b + [1] * both + [0] * neither
    return a, b


def test_mcnemar_is_the_exact_two_sided_binomial_test_on_discordant_items():
    from scipy.stats import binomtest

    for only_a, only_b in [(1, 0), (0, 1), (5, 0), (4, 1), (1, 4), (3, 3), (7, 2), (10, 25),
                           (0, 40), (60, 40), (1200, 1300), (1000, 1100)]:
        a, b = _scored(only_a, only_b, both=17, neither=5)
        want = binomtest(only_a, only_a + only_b, 0.5).pvalue
        assert evaluate.mcnemar(a, b) == pytest.approx(want, rel=1e-9, abs=1e-300)
    # two-sided: A ahead by 7-2 and B ahead by 2-7 are equally surprising, and 7-2 is not
    # the one-sided tail P(X >= 7) = 0.0898
    assert evaluate.mcnemar(*_scored(7, 2)) == evaluate.mcnemar(*_scored(2, 7))
    assert evaluate.mcnemar(*_scored(7, 2)) == pytest.approx(0.1796875, rel=1e-12)
    assert evaluate.mcnemar(*_scored(3, 3)) == 1.0
    # items both methods get right (or wrong) do not move the test
    assert evaluate.mcnemar(*_scored(9, 1)) == evaluate.mcnemar(*_scored(9, 1, 500, 300))
    assert evaluate.mcnemar([True, False], [True, False]) == 1.0       # nothing discordant
    # bools, 0/1 floats, numpy arrays and tensors mean the same
    a, b = _scored(6, 1, both=3)
    p = evaluate.mcnemar(a, b)
    assert evaluate.mcnemar(np.array(a, bool), torch.tensor(b, dtype=torch.float32)) == p
    assert evaluate.mcnemar(tuple(map(bool, a)), [float(x) for x in b]) == p


def test_mcnemar_rejects_bad_input():
    for a, b, err, name in [([], [], ValueError, "empty"),
                            ([1, 0], [1], ValueError, "a_correct has 2 items"),
                            ([1, 2], [1, 0], ValueError, "a_correct must hold only"),
                            ([1, 0], [0.5, 1], ValueError, "b_correct must hold only"),
                            ([1, 0], [float("nan"), 1], ValueError, "b_correct must hold only"),
                            ([1, 0], [-1, 1], ValueError, "b_correct must hold only"),
                            (["1", "0"], [1, 0], TypeError, "a_correct must hold numbers"),
                            ([1, None], [1, 0], TypeError, "a_correct must hold numbers"),
                            ("10", "10", TypeError, "a_correct must be a sequence"),
                            (1, 1, TypeError, "a_correct must be a sequence"),
                            (np.ones((3, 2)), np.ones((3, 2)), ValueError, "a_correct must be 1-D"),
                            ([1, 0], torch.ones(2, 1), ValueError, "b_correct must be 1-D"),
                            (torch.tensor(1), torch.tensor(1), ValueError, "1-D"),
                            ([[1, 0], [1]], [1, 0], ValueError, "a_correct must be a flat")]:
        with pytest.raises(err, match=f"mcnemar: .*{name}"):
            evaluate.mcnemar(a, b)


def test_uncertainty_helpers_refuse_huge_inputs_at_once():
    import time
    from collections.abc import Sequence

    class Endless(Sequence):                # a billion items, none of them stored
        def __len__(self):
            return 10**9

        def __getitem__(self, i):
            return 1

    huge = torch.ones(1, dtype=torch.bool).expand(10**9)     # a billion bools in one byte
    start = time.perf_counter()
    for a in (Endless(), huge):
        with pytest.raises(ValueError, match="mcnemar: a_correct has 1000000000 items"):
            evaluate.mcnemar(a, a)
        with pytest.raises(ValueError, match="paired_bootstrap: a_scores has 1000000000"):
            evaluate.paired_bootstrap(a, a)
    scores = list(range(1000))
    for n in (10**12, 1_000_000, 10**6 + 1):
        with pytest.raises(ValueError, match="paired_bootstrap: n"):
            evaluate.paired_bootstrap(scores, scores, n=n)
    with pytest.raises(ValueError, match="wilson_interval: n"):
        evaluate.wilson_interval(1, 10**100)
    assert time.perf_counter() - start < 5


def _correlated_scores(items=300, seed=0):
    # per-item difficulty shared by both methods dominates; A is 0.1 better on average
    rng = np.random.default_rng(seed)
    difficulty = rng.normal(0, 1, items)
    return (difficulty + 0.1 + rng.normal(0, 0.3, items), difficulty + rng.normal(0, 0.3, items))


def test_paired_bootstrap_matches_scipy_within_monte_carlo_error():
    from statistics import NormalDist, fmean

    from scipy.stats import bootstrap

    resamples = 20_000
    a, b = _correlated_scores()
    mean_diff, low, high = evaluate.paired_bootstrap(a, b, n=resamples, seed=1)
    assert mean_diff == fmean(a - b)                      # correctly rounded
    assert mean_diff == pytest.approx(np.mean(a - b), rel=1e-14)
    want = bootstrap((a - b,), np.mean, n_resamples=resamples, method="percentile",
                     confidence_level=0.95, rng=np.random.default_rng(2)).confidence_interval
    # Monte Carlo error of a 2.5 % quantile from B resamples: sqrt(q(1-q)/B) / density there.
    # The resampled mean is close to normal with sd se = std(a-b)/sqrt(items), density
    # phi(1.96)/se at the quantile, so one run's standard error is about 2.7 se/sqrt(B); two
    # independent runs differ by sqrt(2) times that (0.027 se at B = 20,000). Allow 6 of them.
    se = np.std(a - b) / np.sqrt(len(a))
    z = NormalDist().inv_cdf(0.975)
    mc_error = np.sqrt(2 * 0.025 * 0.975 / resamples) / NormalDist().pdf(z) * se
    assert abs(low - want.low) < 6 * mc_error and abs(high - want.high) < 6 * mc_error
    # the tolerance is tight enough to tell pairing apart: resampling A's and B's items
    # independently widens the interval by 1.96 * (0.10 - 0.025) here, ~25 such errors
    assert 6 * mc_error < 0.3 * (high - low)
    # on 0/1 scores (the usual case) every summation order gives the same mean
    a01 = np.arange(101) % 3 == 0
    b01 = np.arange(101) % 4 == 0
    assert evaluate.paired_bootstrap(a01, b01, n=10)[0] == np.mean(a01.astype(float) - b01)


def test_paired_bootstrap_resamples_the_same_items_for_both_methods():
    # B is A minus 0.5 on every item: every paired resample differs by exactly 0.5, while
    # resampling the two lists independently would spread over A's wide range
    a = np.linspace(0, 10, 50)
    assert evaluate.paired_bootstrap(a, a - 0.5, n=2000) == (0.5, 0.5, 0.5)
    assert evaluate.paired_bootstrap([0.7], [0.2], n=5) == (pytest.approx(0.5),) * 3
    # correlated methods: the paired interval is narrower than the unpaired spread
    a, b = _correlated_scores()
    _, low, high = evaluate.paired_bootstrap(a, b, n=4000)
    unpaired_sd = np.sqrt(np.var(a) / len(a) + np.var(b) / len(b))
    assert high - low < 0.5 * (2 * 1.96 * unpaired_sd)
    assert low > 0                        # A's 0.1 lead is resolved when paired


def test_paired_bootstrap_is_deterministic_and_leaves_global_rngs_alone():
    a, b = _correlated_scores(items=60)
    first = evaluate.paired_bootstrap(a, b, n=3000, seed=7)
    torch.manual_seed(123)
    np.random.seed(123)
    torch_state, np_state = torch.get_rng_state(), np.random.get_state()[1].copy()
    assert evaluate.paired_bootstrap(list(a), tuple(b), n=3000, seed=7) == first
    assert evaluate.paired_bootstrap(torch.tensor(a), torch.tensor(b), n=3000, seed=7) == first
    assert torch.equal(torch.get_rng_state(), torch_state)        # no global RNG drawn from
    assert np.array_equal(np.random.get_state()[1], np_state)
    assert evaluate.paired_bootstrap(a, b, n=3000, seed=8) != first
    # a narrower confidence gives a narrower interval inside the wider one
    _, lo90, hi90 = evaluate.paired_bootstrap(a, b, n=3000, seed=7, confidence=0.9)
    assert first[1] < lo90 < hi90 < first[2]


def test_paired_bootstrap_rejects_bad_input():
    ok = [0.1, 0.2, 0.3]
    for args, kwargs, err, name in [
            (([], []), {}, ValueError, "a_scores is empty"),
            ((ok, ok[:2]), {}, ValueError, "a_scores has 3 items, b_scores has 2"),
            (([0.1, float("nan"), 0.3], ok), {}, ValueError, "finite"),
            ((ok, [0.1, float("inf"), 0.3]), {}, ValueError, "finite"),
            ((np.ones((3, 1)), ok), {}, ValueError, "a_scores must be 1-D"),
            ((ok, torch.ones(3, 2)), {}, ValueError, "b_scores must be 1-D"),
            ((["a", "b", "c"], ok), {}, TypeError, "a_scores must hold numbers"),
            ((ok, "abc"), {}, TypeError, "b_scores must be a sequence"),
            ((ok, ok), {"n": 0}, ValueError, "n must be in"),
            ((ok, ok), {"n": -3}, ValueError, "n must be in"),
            ((ok, ok), {"n": 100.5}, TypeError, "n must be an int"),
            ((ok, ok), {"n": True}, TypeError, "n must be an int"),
            ((ok, ok), {"seed": -1}, ValueError, "seed must be in"),
            ((ok, ok), {"seed": False}, TypeError, "seed must be an int"),
            ((ok, ok), {"seed": None}, TypeError, "seed must be an int"),
            ((ok, ok), {"confidence": 1.0}, ValueError, "confidence"),
            ((ok, ok), {"confidence": float("nan")}, ValueError, "confidence")]:
        with pytest.raises(err, match=f"paired_bootstrap: .*{name}"):
            evaluate.paired_bootstrap(*args, **kwargs)


# ---- cases that catch subtle bugs (tools/mutants.py breaks the module on purpose)
def test_exact_match_is_equality_not_containment():
    # a prediction that is part of the answer (or contains it) is not an exact match
    assert evaluate.exact_match(["fox", "the red fox jumps"], ["the red fox", "red fox"]) == 0.0
    assert evaluate.exact_match(["An Apple!"], ["apple"]) == 1.0
    assert evaluate.normalize_answer("an owl, an oak") == "owl oak"
