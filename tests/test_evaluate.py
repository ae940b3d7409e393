import math

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
    with pytest.raises(ValueError, match="NaN"):
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
