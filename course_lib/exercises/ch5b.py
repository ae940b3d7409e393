"""Chapter 5b exercises: alignment from preferences."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from course_lib.exercises import Case, Exercise, register
from course_lib.exercises._util import need_real, need_tensor, randn


def dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta=0.1):
    """Mean of -log sigmoid(beta * ((pi_c - ref_c) - (pi_r - ref_r))) over the batch."""
    tensors = [policy_chosen, policy_rejected, ref_chosen, ref_rejected]
    for name, t in zip(["policy_chosen", "policy_rejected", "ref_chosen", "ref_rejected"],
                       tensors):
        need_tensor(name, t)
    if len({t.shape for t in tensors}) != 1:
        raise ValueError("the four log-probability tensors must have the same shape")
    need_real("beta", beta, 0.0, float("inf"))
    margin = (policy_chosen - ref_chosen) - (policy_rejected - ref_rejected)
    return -F.logsigmoid(beta * margin).mean()


register(Exercise(
    id="ch5b.dpo_loss", title="The DPO loss", kind="function",
    section="05_finetuning.md",
    prompt=("Write dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, "
            "beta=0.1) from summed log-probabilities (1-D tensors, one entry per pair): the "
            "mean over pairs of -log sigmoid(beta * ((pi_c - ref_c) - (pi_r - ref_r))). Raise "
            "ValueError when the shapes differ or beta <= 0."),
    hint="Use F.logsigmoid for stability; chosen minus rejected, each relative to the reference.",
    reference=dpo_loss, atol=1e-6, rtol=1e-5,
    cases=lambda: [
        Case((torch.tensor([-5.0]), torch.tensor([-7.0]), torch.tensor([-6.0]),
              torch.tensor([-6.0])), note="one pair"),
        Case((randn(6, seed=1, scale=10), randn(6, seed=2, scale=10), randn(6, seed=3, scale=10),
              randn(6, seed=4, scale=10)), {"beta": 0.5}, note="six pairs, beta 0.5"),
        Case((torch.tensor([-100.0]), torch.tensor([-1.0]), torch.tensor([-1.0]),
              torch.tensor([-100.0])), {"beta": 1.0}, note="a large margin the wrong way"),
    ],
    bad_cases=lambda: [
        Case((torch.zeros(3), torch.zeros(2), torch.zeros(3), torch.zeros(3)),
             note="mismatched pairs"),
        Case((torch.zeros(3), torch.zeros(3), torch.zeros(3), torch.zeros(3)), {"beta": 0.0},
             note="beta 0")],
))
