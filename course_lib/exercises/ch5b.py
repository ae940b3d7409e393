"""Chapter 5b exercises: alignment from preferences (book/05b_alignment.md), in page order."""

from __future__ import annotations

import math

import torch

from course_lib.exercises import Case, Exercise, register
from course_lib.exercises._util import need_tensor, randn

PAGE = "05b_alignment.md"


# ------------------------------------------------------------- 1. Bradley-Terry by hand
def bt_gradient(r_chosen, r_rejected):
    """Gradient of mean(-log sigmoid(r_chosen - r_rejected)) with respect to each reward."""
    need_tensor("r_chosen", r_chosen)
    need_tensor("r_rejected", r_rejected)
    if r_chosen.shape != r_rejected.shape or r_chosen.dim() != 1:
        raise ValueError(f"bt_gradient: r_chosen and r_rejected must be 1-D of one shape, got "
                         f"{tuple(r_chosen.shape)} and {tuple(r_rejected.shape)}")
    # d/dd of -log sigmoid(d) is -sigmoid(-d); d = r_chosen - r_rejected; the mean adds 1/B
    push = torch.sigmoid(r_rejected - r_chosen) / len(r_chosen)
    return -push, push


register(Exercise(
    id="ch5b.bt_gradient", title="The Bradley-Terry gradient, by hand", kind="function",
    section=PAGE, transfer=True,
    prompt=("Write bt_gradient(r_chosen, r_rejected) -> (grad_chosen, grad_rejected): the "
            "gradient of the mean Bradley-Terry loss with respect to each reward, without "
            "autograd. ValueError when the shapes differ or are not 1-D."),
    hint=("Differentiate -log sigmoid(d) with respect to d first (sigmoid'(d) = sigmoid(d) "
          "sigmoid(-d)), then apply the chain rule to d = r_chosen - r_rejected; the mean "
          "divides by the batch size."),
    why=("With $d = r_w - r_l$, $\\frac{d}{dd}[-\\log\\sigma(d)] = -\\frac{\\sigma(d)\\sigma(-d)}"
         "{\\sigma(d)} = -\\sigma(-d)$, and $\\partial d/\\partial r_w = 1$, "
         "$\\partial d/\\partial r_l = -1$. So each pair pushes the chosen reward up and the "
         "rejected one down by the same amount $\\sigma(-d)/B$: the probability the model "
         "currently gives to the *wrong* order. A pair already ranked by a wide margin "
         "($\\sigma(-d) \\approx 0$) stops teaching; a pair ranked the wrong way teaches "
         "with weight near $1/B$. The two gradients always sum to zero: only the difference "
         "of rewards is learned, which is why a reward model's scale and offset mean nothing "
         "on their own."),
    reference=bt_gradient, atol=1e-6, rtol=1e-5,
    cases=lambda: [
        Case((torch.tensor([0.0]), torch.tensor([0.0])), note="a tie: sigmoid(0) = 1/2"),
        Case((torch.tensor([2.0, -1.0]), torch.tensor([0.0, 1.0])),
             note="one pair right, one wrong"),
        Case((randn(6, seed=1, scale=3), randn(6, seed=2, scale=3)), note="six random pairs"),
        Case((torch.tensor([30.0]), torch.tensor([-30.0])), note="a huge margin"),
    ],
    bad_cases=lambda: [
        Case((torch.zeros(3), torch.zeros(2)), note="mismatched pairs"),
        Case((torch.zeros(2, 2), torch.zeros(2, 2)), note="not 1-D"),
    ],
))


# ----------------------------------------------------------- 2. best-of-n with a verifier
register(Exercise(
    id="ch5b.bon_samples", title="Predict: how many samples does best-of-n need?",
    kind="number", section=PAGE, transfer=True,
    prompt=("A model answers a question correctly with probability 0.2 per sample; a perfect "
            "verifier scores correct answers 1 and wrong ones 0. What is the smallest n for "
            "which best-of-n is correct with probability at least 0.9?"),
    hint=("Order the two kinds of answer by reward and use the page's formula for the "
          "correct one: F(correct) = 1 and F_-(correct) = 0.8. Or ask when best-of-n is "
          "wrong."),
    why=("Best-of-$n$ is wrong only when all $n$ samples are wrong: "
         "$\\pi_n(\\text{correct}) = F^n - F_-^n = 1 - 0.8^n$. We need $0.8^n \\le 0.1$, "
         "$n \\ge \\log 0.1 / \\log 0.8 = 10.3$, so $n = 11$ ($0.8^{10} = 0.107$ is not "
         "enough, $0.8^{11} = 0.086$ is). Its KL from the model is "
         "$\\pi_n \\log(\\pi_n/0.2) + (1-\\pi_n)\\log((1-\\pi_n)/0.8)$, about 1.2 nats, well "
         "under the bound $\\log 11 - 10/11 = 1.49$: with two kinds of answer there is "
         "little room to move."),
    reference=math.ceil(math.log(0.1) / math.log(0.8)), tolerance=0.0,
))


# ------------------------------------------------------ 3. REINFORCE for a tiny policy
def reinforce_grad(logits, samples, rewards):
    """REINFORCE estimate of the gradient of E[r] with respect to a categorical policy's
    logits, with the batch-mean reward as the baseline."""
    need_tensor("logits", logits)
    need_tensor("rewards", rewards)
    if not isinstance(samples, torch.Tensor) or samples.dtype not in (torch.int32, torch.int64):
        raise TypeError("reinforce_grad: samples must be an integer tensor of indices")
    if logits.dim() != 1 or samples.dim() != 1 or rewards.shape != samples.shape:
        raise ValueError("reinforce_grad: logits must be 1-D (V,), samples and rewards 1-D "
                         "of one length")
    if len(samples) == 0 or samples.min() < 0 or samples.max() >= len(logits):
        raise ValueError(f"reinforce_grad: samples must be indices in [0, {len(logits)})")
    probs = torch.softmax(logits.double(), dim=0)
    advantage = rewards.double() - rewards.double().mean()
    # grad of log softmax(logits)[y] is onehot(y) - probs
    score = torch.nn.functional.one_hot(samples.long(), len(logits)).double() - probs
    return (advantage[:, None] * score).mean(dim=0).to(logits.dtype)


register(Exercise(
    id="ch5b.reinforce_grad", title="REINFORCE for a three-answer policy", kind="function",
    section=PAGE, transfer=True,
    prompt=("Write reinforce_grad(logits, samples, rewards): the REINFORCE estimate of the "
            "gradient of E[reward] with respect to the logits (V,) of pi = softmax(logits), "
            "from N sampled indices and their rewards, with the batch mean reward as "
            "baseline. By hand, no autograd. ValueError for bad shapes or indices."),
    hint=("The gradient of log softmax(logits)[y] with respect to the logits is onehot(y) - "
          "softmax(logits). Weight it by the sample's reward minus the mean reward, and "
          "average over the samples. This is the direction of ascent, not a loss's gradient."),
    why=("REINFORCE: $\\nabla_\\theta \\mathbb{E}_{y\\sim\\pi}[r(y)] = "
         "\\mathbb{E}[(r(y) - b)\\nabla_\\theta \\log \\pi(y)]$ for any baseline $b$ that "
         "does not depend on the sample, because $\\mathbb{E}[\\nabla \\log \\pi(y)] = "
         "\\sum_y \\nabla \\pi(y) = \\nabla 1 = 0$. For a softmax, "
         "$\\nabla_\\theta \\log \\pi(y) = e_y - \\pi$, so the estimate is "
         "$\\frac1N \\sum_i (r_i - \\bar r)(e_{y_i} - \\pi)$. Samples better than average "
         "push their own logit up and every logit down in proportion to its probability; "
         "worse ones the other way. With $\\bar r$ as baseline the $-\\pi$ terms sum to "
         "zero, so only the sampled logits move. The page's `reinforce_loss` is the same "
         "estimate, obtained by autograd from $-\\frac1N\\sum_i (r_i - \\bar r) \\log "
         "\\pi(y_i)$ (with a minus sign, as a loss to minimise)."),
    reference=reinforce_grad, atol=1e-6, rtol=1e-5,
    cases=lambda: [
        Case((torch.zeros(3), torch.tensor([0, 1, 2, 0]), torch.tensor([1.0, 0.0, 0.0, 1.0])),
             note="uniform policy, answer 0 rewarded"),
        Case((torch.tensor([1.0, 0.0, -1.0]), torch.tensor([2, 2, 1]),
              torch.tensor([3.0, 5.0, 4.0])), note="all rewards positive"),
        Case((randn(5, seed=3), torch.tensor([4, 0, 0, 3, 1, 4]), randn(6, seed=4) + 2.0),
             note="five answers, six samples"),
        Case((torch.tensor([0.5, -0.5]), torch.tensor([1, 1]), torch.tensor([2.0, 2.0])),
             note="equal rewards: no signal"),
    ],
    bad_cases=lambda: [
        Case((torch.zeros(3), torch.tensor([0, 3]), torch.ones(2)), note="index out of range"),
        Case((torch.zeros(3), torch.tensor([0, 1]), torch.ones(3)), note="mismatched lengths"),
        Case((torch.zeros(2, 3), torch.tensor([0, 1]), torch.ones(2)), note="logits not 1-D"),
    ],
))


# ------------------------------------------------------------ 4. choosing a checkpoint
register(Exercise(
    id="ch5b.fresh_prompts", title="Explain: the best of twenty learning rates",
    kind="choice", section=PAGE, transfer=True,
    prompt=("20 learning rates, each run scored on the same 300 held-out questions; the best "
            "scores 66 % and the report says 'the model reaches 66 %'. What is wrong, and what "
            "fixes it?"),
    choices={
        "a": "Nothing: each run's score is an unbiased estimate of that run's true accuracy, "
             "so the kept run's score is too.",
        "b": "The kept run won partly because it was lucky on those 300 questions, so 66 % is "
             "biased upward; choose the run on one set of questions and report its score on "
             "questions that played no part in the choice.",
        "c": "300 questions are too few to measure any accuracy; reporting the median run, "
             "about 62 %, fixes it.",
        "d": "The 20 runs share one base model, so their scores are not independent; training "
             "each with its own seed fixes it.",
    },
    explanations={
        "a": "Each score alone is unbiased, but the maximum of 20 noisy scores is not: the "
             "choice looks at the noise.",
        "b": "Selection on noise: the winner is partly the luckiest. Questions that had no "
             "part in the choice give an unbiased estimate of the run you kept.",
        "c": "300 questions measure one run to about 5 points; the median describes a run you "
             "did not keep, not the one you report.",
        "d": "Sharing a base is not the problem; choosing by the same questions you report on "
             "is, whatever the seeds.",
    },
    hint=("Section 4 chose an RL checkpoint on 12 prompts and then measured it again on fresh "
          "ones. Twenty runs scored on one test set: what decides which one scores highest, "
          "besides being the best?"),
    why=("Each run's score is its true accuracy plus noise: on 300 questions near 62 %, the "
         "95% interval of one score is about $\\pm 5.5$ points. The best of 20 such scores "
         "picks the largest noise as well as the best run, so its score overstates the kept "
         "run (the *winner's curse*). It is section 4's situation with learning rates in "
         "place of checkpoints: there the best of several 12-prompt scores was measured "
         "again on prompts never used for choosing. The fix is the same: a validation set to "
         "choose on, and a test set, untouched by the choice, to report on (with a paired "
         "interval against the baseline). Reusing one test set for many choices turns it "
         "into a validation set."),
    reference="b",
))


# ------------------------------------------------------------ 5. DPO's implicit reward
_IMPLICIT = {"beta": 0.1, "pi": (-4.0, -6.0), "ref": (-3.0, -8.0)}


def _implicit_margin(beta, pi, ref):
    return beta * ((pi[0] - ref[0]) - (pi[1] - ref[1]))


register(Exercise(
    id="ch5b.implicit_margin", title="Predict: which answer does DPO's implicit reward prefer?",
    kind="number", section=PAGE,
    prompt=("beta = 0.1; log pi(A|x) = -4, log pi(B|x) = -6; log pi_ref(A|x) = -3, "
            "log pi_ref(B|x) = -8. What is the implicit reward margin r(A) - r(B)?"),
    hint=("The implicit reward is beta log(pi/pi_ref) plus beta log Z(x), and Z cancels in "
          "a difference for the same prompt."),
    why=("$r(A) - r(B) = \\beta[(\\log\\pi(A) - \\log\\pi_{ref}(A)) - (\\log\\pi(B) - "
         "\\log\\pi_{ref}(B))] = 0.1\\,[(-4 + 3) - (-6 + 8)] = 0.1 \\times (-3) = -0.3$. "
         "The policy gives A more probability than B ($e^{-4} > e^{-6}$), yet the implicit "
         "reward prefers **B**: what counts is how each answer moved *relative to the "
         "reference*: A lost a factor $e$, B gained $e^2$. Bradley-Terry then says B is "
         "preferred with probability $\\sigma(0.3) = 0.57$."),
    reference=_implicit_margin(**_IMPLICIT), tolerance=1e-6,
))
