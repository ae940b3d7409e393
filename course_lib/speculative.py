"""Speculative decoding: a small draft model proposes ``k`` tokens, the target model checks them
all in one forward pass, and a rejection rule keeps the output distributed exactly as the
target's own sampling (Leviathan et al. 2023; Chen et al. 2023).

Taught in book/06b_inference.md. For draft token ``d`` with draft probability ``q(d)`` and target
probability ``p(d)``: accept with probability ``min(1, p(d) / q(d))``; at the first rejection,
sample from ``max(0, p - q)`` renormalised and stop; if all ``k`` are accepted, sample one more
token from the target's next distribution (free: the verifying pass computed it). At
temperature 0 both models are greedy and a draft token is accepted exactly when it is the
target's argmax, so the output is the target's greedy output token for token.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ._checks import check_int, check_tensor

__all__ = ["SpeculativeStats", "expected_speedup", "expected_tokens_per_step",
           "speculative_generate", "acceptance_rate", "verify_draft"]


@dataclass
class SpeculativeStats:
    """What one run did: target forward passes, draft tokens proposed and accepted."""

    target_calls: int = 0
    drafted: int = 0
    accepted: int = 0
    new_tokens: int = 0

    def __post_init__(self):
        for name in ("target_calls", "drafted", "accepted", "new_tokens"):
            check_int("SpeculativeStats", name, getattr(self, name), low=0)
        if self.accepted > self.drafted:
            raise ValueError(f"SpeculativeStats: accepted={self.accepted} exceeds "
                             f"drafted={self.drafted}")

    @property
    def acceptance(self) -> float:
        """Share of drafted tokens the target accepted."""
        return self.accepted / self.drafted if self.drafted else float("nan")

    @property
    def tokens_per_call(self) -> float:
        return self.new_tokens / self.target_calls if self.target_calls else float("nan")


def _check_prob(alpha, where, name="alpha"):
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0 <= alpha <= 1:
        raise ValueError(f"{where}: {name} must be a number in [0, 1], got {alpha!r}")


def _check_k(k, where):
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"{where}: k (draft length) must be a positive int, got {k!r}")


def expected_tokens_per_step(alpha: float, k: int) -> float:
    """Tokens produced per target pass when each draft token is accepted with probability
    ``alpha`` independently: ``(1 - alpha^(k+1)) / (1 - alpha)`` (Leviathan et al., Eq. 1)."""
    _check_prob(alpha, "expected_tokens_per_step")
    _check_k(k, "expected_tokens_per_step")
    return float(k + 1) if alpha == 1 else (1 - alpha ** (k + 1)) / (1 - alpha)


def expected_speedup(alpha: float, k: int, cost_ratio: float) -> float:
    """Expected wall-clock speed-up over plain decoding when one draft step costs
    ``cost_ratio`` target steps and verifying ``k + 1`` tokens costs one target step:
    ``(1 - alpha^(k+1)) / ((1 - alpha)(k c + 1))`` (Leviathan et al., Theorem 3.8)."""
    _check_prob(alpha, "expected_speedup")
    _check_k(k, "expected_speedup")
    if isinstance(cost_ratio, bool) or not isinstance(cost_ratio, int | float) \
            or not 0 <= cost_ratio < math.inf:
        raise ValueError(f"expected_speedup: cost_ratio must be a finite number >= 0, "
                         f"got {cost_ratio!r}")
    return expected_tokens_per_step(alpha, k) / (k * cost_ratio + 1)


def acceptance_rate(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Probability that a token drawn from ``q`` is accepted against ``p``:
    ``sum_x min(p(x), q(x)) = 1 - TV(p, q)``, over the last dimension. ``p`` and ``q`` are
    probability vectors (or batches of them, same shape): finite, >= 0, summing to 1 within
    1e-4."""
    for name, t in (("p", p), ("q", q)):
        check_tensor("acceptance_rate", name, t, floating=True, min_dim=1, nonempty=True,
                     finite=True)
        if (t < 0).any():
            raise ValueError(f"acceptance_rate: {name} has negative probabilities")
        total = t.double().sum(-1)
        if ((total - 1).abs() > 1e-4).any():
            raise ValueError(f"acceptance_rate: {name} must sum to 1 over the last dimension, "
                             f"got sums {total.flatten()[:4].tolist()}")
    if p.shape != q.shape:
        raise ValueError(f"acceptance_rate: p has shape {tuple(p.shape)}, q {tuple(q.shape)}")
    return torch.minimum(p, q).sum(-1)


def _truncate(caches, n: int) -> None:
    for c in caches:
        if c.k is not None and c.k.shape[-2] > n:
            c.k, c.v = c.k[..., :n, :], c.v[..., :n, :]


def _probs(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    return F.softmax(logits.double() / temperature, dim=-1)


def _feed(model, caches, seq: list[int]) -> torch.Tensor:
    """Feed the tokens of ``seq`` the cache has not seen; return logits (n_fed, V)."""
    new = seq[len(caches[0]):]
    logits, _ = model(torch.tensor([new]), kv_caches=caches)
    return logits[0]


def _verify(t_logits, q_list, proposal, temperature, generator):
    """The rejection rule (no input checks): how many proposals are accepted, and the token
    that follows them (a residual sample at the first rejection, else the bonus token)."""
    k = len(proposal)
    accepted = 0
    for i, token in enumerate(proposal):
        p = _probs(t_logits[i], temperature)
        u = torch.rand((), generator=generator, dtype=torch.float64)
        if not bool(u < p[token] / q_list[i][token]):
            break
        accepted += 1
    if accepted < k:  # residual distribution max(0, p - q), renormalised
        p = _probs(t_logits[accepted], temperature)
        residual = (p - q_list[accepted]).clamp(min=0)
        extra = int(torch.multinomial(residual / residual.sum(), 1, generator=generator))
    else:
        extra = int(torch.multinomial(_probs(t_logits[k], temperature), 1,
                                      generator=generator))
    return accepted, extra


def verify_draft(target_logits: torch.Tensor, draft_probs: torch.Tensor, proposal,
                 temperature: float = 1.0, generator: torch.Generator | None = None
                 ) -> tuple[int, int]:
    """One verification step of speculative sampling, as ``speculative_generate`` runs it.

    ``target_logits`` (k + 1, V): the target's logits at the k proposed positions and the one
    after them; ``draft_probs`` (k, V): the draft's distributions the k tokens of ``proposal``
    were drawn from. Token ``proposal[i]`` is accepted with probability ``min(1, p/q)``; at the
    first rejection the next token is drawn from ``max(0, p - q)`` renormalised; when all k
    are accepted it is drawn from the target's last distribution. Returns
    ``(n_accepted, next_token)``; draws from ``generator`` in the order the generator uses.
    Taught in book/06b_inference.md."""
    where = "verify_draft"
    check_tensor(where, "target_logits", target_logits, floating=True, min_dim=2,
                 nonempty=True, finite=True)
    check_tensor(where, "draft_probs", draft_probs, floating=True, min_dim=2, finite=True)
    if not isinstance(proposal, list | tuple) or not proposal or any(
            isinstance(t, bool) or not isinstance(t, int) for t in proposal):
        raise TypeError(f"{where}: proposal must be a non-empty list of token ids (ints)")
    k, vocab = len(proposal), target_logits.shape[-1]
    if target_logits.dim() != 2 or target_logits.shape[0] != k + 1:
        raise ValueError(f"{where}: target_logits must be (k + 1, V) = ({k + 1}, V), "
                         f"got {tuple(target_logits.shape)}")
    if tuple(draft_probs.shape) != (k, vocab):
        raise ValueError(f"{where}: draft_probs must be (k, V) = ({k}, {vocab}), "
                         f"got {tuple(draft_probs.shape)}")
    if (draft_probs < 0).any() or ((draft_probs.double().sum(-1) - 1).abs() > 1e-4).any():
        raise ValueError(f"{where}: draft_probs rows must be probabilities summing to 1")
    if any(not 0 <= t < vocab for t in proposal):
        raise ValueError(f"{where}: proposal has ids outside [0, {vocab})")
    if any(draft_probs[i, t] <= 0 for i, t in enumerate(proposal)):
        raise ValueError(f"{where}: a proposed token has draft probability 0 (it cannot have "
                         "been drawn from draft_probs)")
    if isinstance(temperature, bool) or not isinstance(temperature, int | float) \
            or not 0 < temperature < math.inf:
        raise ValueError(f"{where}: temperature must be a finite number > 0, got {temperature!r}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"{where}: generator must be a torch.Generator or None, "
                        f"got {type(generator).__name__}")
    return _verify(target_logits, draft_probs.double(), list(proposal), temperature, generator)


def _check_models(where, target, draft, prompt, generator) -> None:
    """Two course GPTs with KV caches and one vocabulary; prompt ids inside it."""
    for name, model in (("target", target), ("draft", draft)):
        if not (isinstance(model, torch.nn.Module) and hasattr(model, "new_kv_caches")):
            raise TypeError(f"{where}: {name} must be a course GPT with KV caches, "
                            f"got {type(model).__name__}")
    if target.config.vocab_size != draft.config.vocab_size:
        raise ValueError(f"{where}: target and draft must share a vocabulary")
    check_tensor(where, "prompt", prompt, floating=False)
    if ((prompt < 0) | (prompt >= target.config.vocab_size)).any():
        raise ValueError(f"{where}: prompt has ids outside [0, {target.config.vocab_size})")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"{where}: generator must be a torch.Generator or None, "
                        f"got {type(generator).__name__}")


@torch.no_grad()
def speculative_generate(target, draft, prompt: torch.Tensor, max_new_tokens: int, k: int = 4,
                         temperature: float = 0.0, generator: torch.Generator | None = None
                         ) -> tuple[torch.Tensor, SpeculativeStats]:
    """Decode ``max_new_tokens`` tokens after ``prompt`` (1, T) from ``target`` with ``draft``
    proposing ``k`` at a time. Both are course GPTs with KV caches and the same vocabulary.
    Returns ``(ids (1, T + max_new_tokens), stats)``. ``temperature=0`` is greedy."""
    where = "speculative_generate"
    _check_k(k, where)
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) \
            or max_new_tokens < 1:
        raise ValueError(f"{where}: max_new_tokens must be a positive int, got {max_new_tokens!r}")
    if isinstance(temperature, bool) or not isinstance(temperature, int | float) \
            or not 0 <= temperature < math.inf:
        raise ValueError(f"{where}: temperature must be a finite number >= 0, got {temperature!r}")
    if not isinstance(prompt, torch.Tensor) or prompt.dim() != 2 or prompt.shape[0] != 1 \
            or prompt.shape[1] < 1:
        raise ValueError(f"{where}: prompt must be a (1, T) tensor of token ids with T >= 1")
    _check_models(where, target, draft, prompt, generator)
    limit = min(target.config.block_size, draft.config.block_size)
    if prompt.shape[1] + max_new_tokens + k > limit:
        raise ValueError(f"{where}: prompt ({prompt.shape[1]}) + max_new_tokens ({max_new_tokens})"
                         f" + k ({k}) exceeds the models' block_size {limit}")
    seq = prompt[0].tolist()
    goal = len(seq) + max_new_tokens
    t_caches, d_caches = target.new_kv_caches(), draft.new_kv_caches()
    stats = SpeculativeStats()
    greedy = temperature == 0
    while len(seq) < goal:
        # 1. the draft proposes k tokens, one at a time (its cache catches up first)
        n = len(seq)
        proposal, q_list = [], []
        for _ in range(k):
            logits = _feed(draft, d_caches, seq + proposal)[-1]
            if greedy:
                token = int(logits.argmax())
            else:
                q = _probs(logits, temperature)
                token = int(torch.multinomial(q, 1, generator=generator))
                q_list.append(q)
            proposal.append(token)
        # 2. the target scores the context and all k proposals in one pass
        t_logits = _feed(target, t_caches, seq + proposal)[-(k + 1):]   # (k + 1, V)
        stats.target_calls += 1
        stats.drafted += k
        # 3. accept a prefix of the proposals, then one token from the target
        if greedy:
            accepted = 0
            while accepted < k and proposal[accepted] == int(t_logits[accepted].argmax()):
                accepted += 1
            extra = int(t_logits[accepted].argmax())
        else:
            accepted, extra = _verify(t_logits, q_list, proposal, temperature, generator)
        stats.accepted += accepted
        seq = seq + proposal[:accepted] + [extra]
        # 4. forget the keys/values of rejected tokens
        _truncate(t_caches, n + accepted)
        _truncate(d_caches, n + accepted)
    seq = seq[:goal]
    stats.new_tokens = max_new_tokens
    return torch.tensor([seq]), stats
