"""Chapter 6b exercises: distillation, speculative decoding, structured pruning (in page order)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from course_lib.exercises import Case, Exercise, register
from course_lib.exercises._util import need_int, need_real, need_tensor, randn


# ------------------------------------------------------------------ 1. the distillation loss
def distill_loss(student_logits, teacher_logits, labels, temperature, alpha):
    """alpha * T^2 * KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) * CE(s, labels), both
    averaged over the N positions; logits (N, V), labels (N,)."""
    need_tensor("student_logits", student_logits, min_dim=2)
    need_tensor("teacher_logits", teacher_logits, min_dim=2)
    if student_logits.dim() != 2 or student_logits.shape != teacher_logits.shape:
        raise ValueError("student_logits and teacher_logits must both be (N, V), same shape")
    if not isinstance(labels, torch.Tensor) or labels.shape != student_logits.shape[:1]:
        raise ValueError("labels must be a tensor of N token ids")
    need_real("temperature", temperature, 0.0, float("inf"), high_open=True)
    need_real("alpha", alpha, 0.0, 1.0, low_open=False)
    log_p_t = F.log_softmax(teacher_logits / temperature, dim=-1)
    log_p_s = F.log_softmax(student_logits / temperature, dim=-1)
    kl = (log_p_t.exp() * (log_p_t - log_p_s)).sum(-1).mean()
    return alpha * temperature**2 * kl + (1 - alpha) * F.cross_entropy(student_logits, labels)


register(Exercise(
    id="ch6b.distill_loss", title="The distillation loss at temperature T", kind="function",
    section="06b_inference.md",
    prompt=("Write distill_loss(student_logits, teacher_logits, labels, temperature, alpha): "
            "alpha * T^2 * KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) * CE(s, labels), "
            "each averaged over the N positions; logits (N, V), labels (N,)."),
    hint=("The KL sums p_t * (log p_t - log p_s) over the vocabulary, with BOTH logits divided "
          "by T, the teacher's distribution first; the cross-entropy uses the raw logits."),
    why=("With $p_t = \\mathrm{softmax}(t/T)$ and $p_s = \\mathrm{softmax}(s/T)$ (take "
         "`log_softmax` of both for stability), the soft term is "
         "$\\sum_v p_t(v)\\,(\\log p_t(v) - \\log p_s(v))$ per position, averaged over the N "
         "positions and multiplied by $T^2$, so that its gradient keeps its size as $T$ grows "
         "(the page shows the $1/T^2$ it compensates). The hard term is the ordinary "
         "cross-entropy at temperature 1: the labels are not softened. The direction matters: "
         "$\\mathrm{KL}(p_t \\| p_s)$ makes the student cover every token the teacher finds "
         "plausible; `course_lib.distill.distillation_loss` computes the same."),
    transfer=False,
    reference=distill_loss, atol=1e-5, rtol=1e-5,
    cases=lambda: [
        Case((torch.tensor([[1.0, 0.0, 0.5, -0.5]]), torch.tensor([[4.0, 2.0, 1.0, -1.0]]),
              torch.tensor([0]), 4.0, 1.0), note="soft term only, T = 4"),
        Case((randn(3, 5, seed=1), randn(3, 5, seed=2, scale=3), torch.tensor([0, 4, 2]),
              1.0, 0.0), note="hard labels only (alpha = 0)"),
        Case((randn(6, 10, seed=3), randn(6, 10, seed=4, scale=3),
              torch.tensor([1, 9, 0, 3, 3, 7]), 2.0, 0.5), note="the page's soft student: T 2"),
        Case((randn(4, 8, seed=5), randn(4, 8, seed=6, scale=5), torch.tensor([2, 2, 5, 0]),
              8.0, 0.9), note="a high temperature"),
    ],
    bad_cases=lambda: [
        Case((torch.zeros(2, 4), torch.zeros(2, 5), torch.tensor([0, 1]), 2.0, 0.5),
             note="vocabularies differ"),
        Case((torch.zeros(2, 4), torch.zeros(2, 4), torch.tensor([0, 1]), 0.0, 0.5),
             note="temperature 0"),
        Case((torch.zeros(2, 4), torch.zeros(2, 4), torch.tensor([0, 1]), 2.0, 1.5),
             note="alpha above 1"),
    ],
))


# ------------------------------------------------------------ 2. what comes out after a proposal
def _f64(values):
    return torch.tensor(values, dtype=torch.float64)


def emitted_given_proposal(p, q, x):
    """Distribution of the token the rule emits at one position, given that the draft
    proposed token x (drawn from q): x with probability a = min(1, p(x)/q(x)), otherwise a
    sample of the residual max(0, p - q) renormalised."""
    for name, t in (("p", p), ("q", q)):
        need_tensor(name, t)
        if t.dim() != 1:
            raise ValueError(f"emitted_given_proposal: {name} must be a 1-D probability vector")
        if (t < 0).any() or abs(float(t.double().sum()) - 1) > 1e-4:
            raise ValueError(f"emitted_given_proposal: {name} must be probabilities "
                             "(>= 0, summing to 1)")
    if p.shape != q.shape:
        raise ValueError(f"emitted_given_proposal: p and q must have the same shape, got "
                         f"{tuple(p.shape)} and {tuple(q.shape)}")
    need_int("x", x, low=0)
    if x >= len(q) or q[x] <= 0:
        raise ValueError(f"emitted_given_proposal: x={x} is not a token the draft can propose")
    a = min(1.0, float(p[x] / q[x]))            # probability that x is accepted
    out = torch.zeros_like(p)
    if a < 1:                                   # q(x) > p(x): the residual has mass
        residual = (p - q).clamp(min=0)
        out = (1 - a) * residual / residual.sum()
    out[x] += a
    return out


register(Exercise(
    id="ch6b.spec_accept", title="What comes out after a given proposal", kind="function",
    section="06b_inference.md",
    prompt=("Write emitted_given_proposal(p, q, x): given that the draft proposed token x "
            "(drawn from q), return the distribution of the token the rule emits at this "
            "position (x if accepted, else a residual sample)."),
    hint=("Two ways to emit a token: x is accepted (probability min(1, p(x)/q(x))), or it is "
          "rejected and the residual max(0, p - q), renormalised, is sampled. Weight each "
          "distribution by its probability; if x is always accepted, the residual never "
          "matters."),
    why=("Given the proposal $x$, the rule accepts it with probability "
         "$a = \\min(1, p(x)/q(x))$ and otherwise samples the residual "
         "$r = \\max(0, p - q) / \\sum_y \\max(0, p(y) - q(y))$, so the emitted token has "
         "the distribution $a\\,e_x + (1 - a)\\,r$ ($e_x$: all mass on $x$):\n\n"
         "```python\na = min(1.0, float(p[x] / q[x]))\nout = torch.zeros_like(p)\n"
         "if a < 1:\n    residual = (p - q).clamp(min=0)\n"
         "    out = (1 - a) * residual / residual.sum()\nout[x] += a\n```\n\n"
         "For the page's example and a proposed B: $a = 0.2/0.5 = 0.4$ and "
         "$r = (2/3, 0, 1/3, 0)$, so the output is $(0.4, 0.4, 0.2, 0)$, not $p$. "
         "A single step given its proposal is *not* distributed as $p$; only the average "
         "over the proposal is: $\\sum_x q(x)\\,(a_x e_x + (1 - a_x) r) = \\min(p, q) + "
         "(1 - \\sum_y \\min(p(y), q(y)))\\,r = p$, the page's argument read the other way. "
         "When $a = 1$ (the target likes $x$ at least as much as the draft) $x$ comes out "
         "for sure, and the residual, possibly $0/0$, is never needed."),
    transfer=True,
    reference=emitted_given_proposal, atol=1e-9, rtol=1e-9,
    cases=lambda: [
        Case((_f64([0.5, 0.2, 0.2, 0.1]), _f64([0.3, 0.5, 0.1, 0.1]), 1),
             note="the page's example, B proposed: accepted with probability 0.4"),
        Case((_f64([0.5, 0.2, 0.2, 0.1]), _f64([0.3, 0.5, 0.1, 0.1]), 0),
             note="A proposed: p(A) > q(A), always accepted"),
        Case((_f64([0.0, 1.0]), _f64([1.0, 0.0]), 0), note="no overlap: never accepted"),
        Case((_f64([0.25, 0.25, 0.5]), _f64([0.25, 0.25, 0.5]), 2),
             note="p equals q: the residual is 0/0 and never used"),
        Case((torch.softmax(randn(8, seed=1, scale=2).double(), -1),
              torch.softmax(randn(8, seed=2, scale=2).double(), -1), 3),
             note="random, 8 tokens"),
    ],
    bad_cases=lambda: [
        Case((_f64([0.5, 0.5]), _f64([0.2, 0.3, 0.5]), 0), note="shapes differ"),
        Case((_f64([0.5, 0.5]), _f64([0.9, 0.9]), 0), note="q sums to 1.8"),
        Case((_f64([0.5, 0.5]), _f64([1.0, 0.0]), 1), note="q(x) = 0: x cannot be proposed"),
    ],
))


# ------------------------------------------------------------ 3. a draft that drifts
SPEC_ALPHAS = (0.9, 0.8, 0.6, 0.4)


def _tokens_per_pass(alphas):
    total, survive = 1.0, 1.0        # the last token (residual or bonus) always comes
    for a in alphas:
        survive *= a                 # the j-th draft token counts if the first j are accepted
        total += survive
    return total


register(Exercise(
    id="ch6b.spec_tokens", title="Predict: tokens per target pass, when acceptance drifts",
    kind="number", section="06b_inference.md",
    prompt=("A draft proposes k = 4 tokens; the first is accepted with probability 0.9, the "
            "second (given the first was) 0.8, then 0.6, then 0.4. How many tokens does one "
            "target pass produce on average? Within 1%."),
    hint=("The formula on the page assumes one alpha for every position. Go back one step: "
          "the j-th draft token counts only if tokens 1..j are all accepted, and every pass "
          "ends with one more token from the target."),
    why=("Every pass yields the residual sample or the bonus token, 1, plus draft token $j$ "
         "whenever the first $j$ are accepted: "
         "$1 + 0.9 + 0.9 \\cdot 0.8 + 0.9 \\cdot 0.8 \\cdot 0.6 + 0.9 \\cdot 0.8 \\cdot 0.6 "
         "\\cdot 0.4 = 1 + 0.9 + 0.72 + 0.432 + 0.1728 = 3.2248$. With a single $\\alpha$ the "
         "same sum is the geometric series $(1-\\alpha^{k+1})/(1-\\alpha)$; plugging in the "
         "mean acceptance 0.675 would give 2.65, too pessimistic here because the early, "
         "likely acceptances weigh the most. Real drafts drift like this: once a draft goes "
         "wrong it tends to stay wrong, which is why long drafts pay less than the formula "
         "says."),
    transfer=True,
    reference=_tokens_per_pass(SPEC_ALPHAS), tolerance=0.01,
))


# ------------------------------------------------------------ 4. a "simpler" rule
register(Exercise(
    id="ch6b.spec_rule", title="Explain: a deterministic acceptance rule", kind="choice",
    section="06b_inference.md",
    prompt=("A colleague simplifies the rule: accept the draft's token x when p(x) >= q(x), "
            "reject it otherwise, and on a rejection sample from norm(max(0, p - q)) as before. "
            "With the page's p = (0.5, 0.2, 0.2, 0.1) and q = (0.3, 0.5, 0.1, 0.1), what "
            "happens to the output?"),
    choices={
        "a": "It is still distributed as p: the residual corrects for any acceptance rule.",
        "b": "It is no longer p: token B (q > p) is never output, so its 0.2 goes to A and C.",
        "c": "It is no longer p, but only slightly: it moves a little towards q.",
        "d": "It is still p, and faster, since accepting needs no random number.",
    },
    explanations={
        "a": ("The residual only refills max(0, p - q); it is tuned to the mass min(p, q) "
              "that the true rule accepts, not to any other."),
        "b": ("B is always rejected (0.2 < 0.5) and the residual has no mass on B, so "
              "P(B) = 0; the output is (0.3 + 1/3, 0, 0.1 + 1/6, 0.1)."),
        "c": "B can never come out at all: the output has no mass where q > p.",
        "d": ("Dropping the coin flip removes exactly the partial acceptances min(p, q) needs, "
              "for every token the draft over-proposes."),
    },
    hint=("Compute P(x) = P(draft proposes x and it is accepted) + P(reject) * residual(x) for "
          "token B under the new rule."),
    why=("Under the new rule, token $x$ is output by acceptance with probability $q(x)$ when "
         "$p(x) \\ge q(x)$ and $0$ otherwise; the rejection probability is the draft mass on "
         "tokens with $p < q$, here $q(B) = 0.5$, and the residual is $(2/3, 0, 1/3, 0)$. So "
         "$P = (0.3 + 0.5 \\cdot 2/3,\\ 0,\\ 0.1 + 0.5 \\cdot 1/3,\\ 0.1) = (0.63, 0, 0.27, "
         "0.1) \\ne p$. The true rule accepts an over-proposed token with probability "
         "$p(x)/q(x)$, which leaves exactly $\\min(p, q)$ accepted per token; the residual "
         "$\\max(0, p - q)$ tops that up to $p$. Any other acceptance probability breaks the "
         "sum $\\min(p, q) + \\max(0, p - q) = p$."),
    transfer=True,
    reference="b",
))


# ------------------------------------------------------------ 5. structured pruning, counted
def pruned_swiglu_size(d_model, d_ff, h, n_layers=1, bytes_per_param=2.0):
    """(parameters, bytes) of n_layers bias-free SwiGLU MLPs (W_gate, W_up: d_ff x d_model;
    W_down: d_model x d_ff) after removing h hidden units from each."""
    need_int("d_model", d_model, low=1)
    need_int("d_ff", d_ff, low=1)
    need_int("h", h, low=0)
    need_int("n_layers", n_layers, low=1)
    if h > d_ff:
        raise ValueError(f"h must be at most d_ff = {d_ff}, got {h}")
    need_real("bytes_per_param", bytes_per_param, 0.0, float("inf"), high_open=True)
    params = n_layers * 3 * d_model * (d_ff - h)
    return params, params * bytes_per_param


register(Exercise(
    id="ch6b.prune_count", title="What structured pruning keeps in a gated MLP",
    kind="function", section="06b_inference.md",
    prompt=("Write pruned_swiglu_size(d_model, d_ff, h, n_layers=1, bytes_per_param=2.0): the "
            "(parameters, bytes) a Llama-style MLP keeps after removing h of its d_ff hidden "
            "units in each of n_layers blocks."),
    hint=("A gated MLP has three bias-free matrices: W_gate and W_up (d_ff x d_model) make "
          "the hidden units, W_down (d_model x d_ff) reads them. Which rows and columns "
          "belong to one hidden unit?"),
    why=("Hidden unit $j$ is row $j$ of $W_\\text{gate}$, row $j$ of $W_\\text{up}$ and "
         "column $j$ of $W_\\text{down}$: $3\\,d_\\text{model}$ parameters, and with no biases "
         "nothing else. So each block keeps $3\\,d_\\text{model}(d_\\text{ff} - h)$ parameters, "
         "$n_\\text{layers}$ blocks keep $n_\\text{layers}$ times that, and the bytes are the "
         "parameters times the bytes per parameter (2 in bf16, 0.5 at 4 bits). For "
         "Llama-2-7B's shape ($d_\\text{model} = 4096$, $d_\\text{ff} = 11008$, 32 blocks), "
         "removing a quarter of the units, $h = 2752$, frees 1.08 billion parameters, 2.2 GB "
         "in bf16. The page's GPT MLP has two matrices with biases: "
         "$2\\,d_\\text{model} + 1$ per unit."),
    transfer=True,
    reference=pruned_swiglu_size, atol=0.0, rtol=1e-9,
    cases=lambda: [
        Case((4, 8, 2), note="a tiny MLP, bf16"),
        Case((128, 512, 256), {"n_layers": 4, "bytes_per_param": 4}, note="fp32, 4 blocks"),
        Case((4096, 11008, 2752), {"n_layers": 32, "bytes_per_param": 2.0},
             note="Llama-2-7B's MLPs, a quarter of the units removed"),
        Case((64, 256, 0), {"bytes_per_param": 0.5}, note="nothing removed, 4-bit"),
        Case((64, 256, 256), note="every unit removed"),
    ],
    bad_cases=lambda: [
        Case((64, 256, 300), note="h larger than d_ff"),
        Case((64, 256, -1), note="negative h"),
        Case((64, 256, 16), {"bytes_per_param": 0}, note="zero bytes per parameter"),
    ],
))
