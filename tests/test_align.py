import math

import pytest
import torch

from course_lib import align, data
from course_lib.models import load_pretrained


@pytest.fixture(scope="module")
def tok():
    return load_pretrained("tiny-gpt").tokenizer


def test_chat_template_has_one_token_per_marker(tok):
    text = align.format_chat("Who is it?", "Tom")
    assert align.show_chat(text) == "<|user|>Who is it?<|assistant|> Tom<|end|>"
    ids = tok.encode(text)
    assert ids[0] == 1 and ids[-1] == 3 and ids.count(2) == 1
    assert align.format_chat("Who is it?").endswith(align.ASSISTANT)


def test_template_rejects_empty_and_reserved_text():
    with pytest.raises(ValueError, match="empty"):
        align.format_chat("  ")
    with pytest.raises(ValueError, match="reserved"):
        align.format_chat("hi\x03", "x")
    with pytest.raises(TypeError):
        align.format_chat(3)


def test_response_only_targets_cover_exactly_the_answer_and_end(tok):
    examples = data.instruction_examples(4)
    x, y_resp = align.sft_batch(tok, examples, response_only=True)
    _, y_all = align.sft_batch(tok, examples, response_only=False)
    for i, e in enumerate(examples):
        ids, n_prompt = align.encode_chat(tok, e["instruction"], e["response"])
        trained = y_resp[i][y_resp[i] != -100].tolist()
        assert trained == ids[n_prompt:]                      # the answer and <|end|>, only
        assert y_all[i][y_all[i] != -100].tolist() == ids[1:]
        assert x[i, : len(ids) - 1].tolist() == ids[:-1]
    with pytest.raises(ValueError):
        align.sft_batch(tok, [])


def test_sft_loss_ignores_masked_positions():
    logits = torch.randn(2, 5, 7)
    y = torch.full((2, 5), -100)
    y[0, 2], y[1, 4] = 3, 6
    want = -(torch.log_softmax(logits[0, 2], -1)[3] + torch.log_softmax(logits[1, 4], -1)[6]) / 2
    torch.testing.assert_close(align.sft_loss(logits, y), want)
    with pytest.raises(ValueError, match="masked"):
        align.sft_loss(logits, torch.full((2, 5), -100))
    with pytest.raises(ValueError, match="match"):
        align.sft_loss(logits, y[:, :3])


def test_sequence_logprobs_sums_the_unmasked_targets():
    logits = torch.randn(2, 4, 5)
    y = torch.tensor([[1, -100, 2, 3], [-100, -100, -100, 4]])
    logp = torch.log_softmax(logits, -1)
    want = torch.stack([logp[0, 0, 1] + logp[0, 2, 2] + logp[0, 3, 3], logp[1, 3, 4]])
    torch.testing.assert_close(align.sequence_logprobs(logits, y), want)


def test_dpo_loss_equals_the_papers_formula_on_hand_made_numbers():
    pc, pr = torch.tensor([-5.0, -9.0]), torch.tensor([-7.0, -6.0])
    rc, rr = torch.tensor([-6.0, -8.0]), torch.tensor([-6.5, -7.0])
    beta = 0.5
    # pair 1: beta * ((-5 + 6) - (-7 + 6.5)) = 0.5 * 1.5 = 0.75
    # pair 2: beta * ((-9 + 8) - (-6 + 7)) = 0.5 * -2 = -1.0
    want = (-math.log(1 / (1 + math.exp(-0.75))) - math.log(1 / (1 + math.exp(1.0)))) / 2
    assert align.dpo_loss(pc, pr, rc, rr, beta=beta).item() == pytest.approx(want, rel=1e-6)
    # equal policy and reference: the loss is log 2 whatever the log-probs
    assert align.dpo_loss(rc, rr, rc, rr).item() == pytest.approx(math.log(2))


def test_dpo_loss_rejects_bad_input():
    a = torch.zeros(3)
    with pytest.raises(ValueError, match="mismatched"):
        align.dpo_loss(a, torch.zeros(2), a, a)
    with pytest.raises(ValueError, match="mismatched"):
        align.dpo_loss(a, a, torch.zeros(2), torch.zeros(2))
    with pytest.raises(ValueError, match="beta"):
        align.dpo_loss(a, a, a, a, beta=0)
    with pytest.raises(ValueError, match="NaN"):
        align.dpo_loss(torch.tensor([float("nan")] * 3), a, a, a)
    with pytest.raises(TypeError):
        align.dpo_loss(torch.zeros(3, dtype=torch.long), a, a, a)


def test_reward_model_loss_is_bradley_terry():
    c, r = torch.tensor([2.0, 0.0]), torch.tensor([1.0, 1.0])
    want = -(math.log(1 / (1 + math.exp(-1))) + math.log(1 / (1 + math.exp(1)))) / 2
    assert align.reward_model_loss(c, r).item() == pytest.approx(want, rel=1e-6)
    with pytest.raises(ValueError, match="mismatched"):
        align.reward_model_loss(c, torch.zeros(3))
    with pytest.raises(ValueError, match="1-D"):
        align.reward_model_loss(torch.zeros(0), torch.zeros(0))
