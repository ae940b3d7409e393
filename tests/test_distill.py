"""Distillation loss held to torch's KL divergence and cross-entropy; the student's training."""

import pytest
import torch
import torch.nn.functional as F

from course_lib import distill
from course_lib.models import GPT, GPTConfig
from course_lib.train import Schedule, fit, get_batch, lm_loss

pytestmark = pytest.mark.usefixtures("one_thread")


def logits(seed, shape=(3, 5, 11)):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g) * 2


def labels(seed, shape=(3, 5), vocab=11):
    return torch.randint(vocab, shape, generator=torch.Generator().manual_seed(seed))


def test_hard_term_is_cross_entropy():
    s, t, y = logits(0), logits(1), labels(2)
    ref = F.cross_entropy(s.reshape(-1, 11), y.reshape(-1))
    torch.testing.assert_close(distill.distillation_loss(s, t, y, 3.0, 0.0), ref)


@pytest.mark.parametrize("temperature", [1.0, 2.0, 5.0])
def test_soft_term_is_kl_teacher_student_times_t_squared(temperature):
    s, t, y = logits(0), logits(1), labels(2)
    # torch's kl_div(input=log q, target=p) is KL(p || q): teacher first
    ref = F.kl_div(F.log_softmax(s.reshape(-1, 11) / temperature, -1),
                   F.softmax(t.reshape(-1, 11) / temperature, -1),
                   reduction="batchmean") * temperature**2
    torch.testing.assert_close(distill.distillation_loss(s, t, y, temperature, 1.0), ref)
    mixed = distill.distillation_loss(s, t, y, temperature, 0.3)
    hard = F.cross_entropy(s.reshape(-1, 11), y.reshape(-1))
    torch.testing.assert_close(mixed, 0.3 * ref + 0.7 * hard)
    # the reverse direction KL(student || teacher) is a different number
    reverse = F.kl_div(F.log_softmax(t.reshape(-1, 11) / temperature, -1),
                       F.softmax(s.reshape(-1, 11) / temperature, -1),
                       reduction="batchmean") * temperature**2
    assert abs(float(reverse - ref)) > 1e-3


def test_gradient_is_t_times_probability_gap():
    """d(T^2 KL)/ds = T (softmax(s/T) - softmax(t/T)) / N: the T^2 keeps soft gradients
    from vanishing as T grows."""
    for temperature in (1.0, 4.0):
        s = logits(0).requires_grad_()
        t, y = logits(1), labels(2)
        distill.distillation_loss(s, t, y, temperature, 1.0).backward()
        n = y.numel()
        expected = temperature * (F.softmax(s.detach() / temperature, -1)
                                  - F.softmax(t / temperature, -1)) / n
        torch.testing.assert_close(s.grad, expected, rtol=1e-4, atol=1e-7)


def test_equal_logits_and_ignored_positions():
    s, y = logits(0), labels(2)
    assert float(distill.distillation_loss(s, s.clone(), y, 2.0, 1.0)) == pytest.approx(0, abs=1e-6)
    y2 = y.clone()
    y2[0] = -100  # the first sequence is padding: neither term may see it
    s2 = s.clone()
    s2[0] = 1000.0
    t = logits(1)
    a = distill.distillation_loss(s2, t, y2, 2.0, 0.5)
    b = distill.distillation_loss(s[1:], t[1:], y[1:], 2.0, 0.5)
    torch.testing.assert_close(a, b)


def test_bad_input():
    s, t, y = logits(0), logits(1), labels(2)
    for temp in (0, -1.0, float("nan"), True, "2"):
        with pytest.raises(ValueError, match="temperature"):
            distill.distillation_loss(s, t, y, temp, 0.5)
    for alpha in (-0.1, 1.1, float("nan"), None):
        with pytest.raises(ValueError, match="alpha"):
            distill.distillation_loss(s, t, y, 2.0, alpha)
    with pytest.raises(ValueError, match="shape"):
        distill.distillation_loss(s, t[:, :, :5], y, 2.0, 0.5)
    with pytest.raises(ValueError, match="labels"):
        distill.distillation_loss(s, t, y.float(), 2.0, 0.5)
    with pytest.raises(ValueError, match="labels"):
        distill.distillation_loss(s, t, torch.full_like(y, -100), 2.0, 0.5)
    with pytest.raises(ValueError, match="student_logits"):
        distill.distillation_loss(y, t, y, 2.0, 0.5)
    with pytest.raises(ValueError, match="teacher"):
        distill.train_student(GPT(GPTConfig(vocab_size=20, block_size=8, n_layer=1, n_head=1,
                                            d_model=8)), None, torch.arange(50) % 20,
                              steps=2, alpha=0.5)


def micro(seed, n_layer=1, d_model=16):
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=30, block_size=16, n_layer=n_layer, n_head=2,
                         d_model=d_model))


def test_hard_student_is_plain_training():
    tokens = torch.randint(30, (400,), generator=torch.Generator().manual_seed(0))
    a, b = micro(0), micro(0)
    h = distill.train_student(a, None, tokens, steps=6, batch_size=4, lr=3e-3, warmup=2,
                              alpha=0.0, progress=False)
    gen = torch.Generator().manual_seed(0)
    ref = fit(b, lambda: get_batch(tokens, 4, 16, gen), lm_loss,
              schedule=Schedule(3e-3, 6, 2), weight_decay=0.1, betas=(0.9, 0.95),
              progress=False)
    assert h.loss == ref.loss  # same batches, same updates, bit for bit
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)


def test_soft_student_learns_from_teacher():
    tokens = (torch.arange(600) * 7 % 30)  # a deterministic cycle the teacher can learn
    teacher = micro(1, n_layer=2, d_model=32)
    distill.train_student(teacher, None, tokens, steps=60, batch_size=8, alpha=0.0, warmup=5,
                          progress=False)
    student = micro(2)
    h = distill.train_student(student, teacher, tokens, steps=40, batch_size=8, warmup=5,
                              temperature=2.0, alpha=0.5, progress=False)
    assert h.loss[-1] < 0.8 * h.loss[0]


def test_load_organism_rejects_unknown():
    with pytest.raises(ValueError, match="unknown model"):
        distill.load_organism("tiny-gpt")
