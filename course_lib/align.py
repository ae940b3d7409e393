"""Instruction formatting (a chat template), the response-only SFT loss, and the preference
losses of alignment: the Bradley-Terry reward-model loss and DPO.

Taught in book/05_finetuning.md.

The chat template marks turns with three special tokens. ``tiny-gpt``'s byte-level BPE has no
spare ids, but bytes 1, 2 and 3 (ASCII control characters) never occur in the course's text,
so the template uses them as reserved tokens, as Llama 3 reserves ids for its own: one token
each, never merged, never produced by ordinary text.
"""

from __future__ import annotations

import math
from numbers import Real

import torch
import torch.nn.functional as F

from ._checks import check_ids, check_int, check_list, check_tensor

__all__ = ["USER", "ASSISTANT", "END", "SPECIAL_TOKENS", "format_chat", "init_chat_tokens",
           "show_chat",
           "encode_chat", "sft_batch", "pad_batch", "sft_loss", "sequence_logprobs", "dpo_loss",
           "reward_model_loss"]

USER, ASSISTANT, END = "\x01", "\x02", "\x03"
SPECIAL_TOKENS = {"<|user|>": USER, "<|assistant|>": ASSISTANT, "<|end|>": END}


def _check_text(name: str, text) -> None:
    if not isinstance(text, str):
        raise TypeError(f"{name} must be a str, got {type(text).__name__}")
    if any(c in text for c in (USER, ASSISTANT, END)):
        raise ValueError(f"{name} contains a reserved chat token (bytes 1-3)")


def format_chat(instruction: str, response: str | None = None) -> str:
    """``<|user|>instruction<|assistant|> response<|end|>`` as one string.

    With ``response=None`` it stops after ``<|assistant|>``: the prompt a model completes.
    The response starts with a space, as words do inside the pretraining text, so the
    model answers with the tokens it already knows (" Tom", not a rarely seen "Tom").
    """
    _check_text("format_chat: instruction", instruction)
    if not instruction.strip():
        raise ValueError("format_chat: instruction is empty")
    text = f"{USER}{instruction}{ASSISTANT}"
    if response is None:
        return text
    _check_text("format_chat: response", response)
    return f"{text} {response}{END}"


@torch.no_grad()
def init_chat_tokens(model) -> None:
    """Give the reserved tokens sensible starting rows, in place, before fine-tuning.

    Their rows were never trained (the bytes never occur in the stories). Each reserved
    token's input embedding becomes the mean of all embeddings (as ``transformers`` does for
    added tokens), and ``<|end|>``'s output row becomes that of the newline, the token that ends
    a story, so the model starts out knowing where an answer may stop.
    """
    if not hasattr(model, "emb") or not hasattr(model, "lm_head"):
        raise TypeError(f"init_chat_tokens: model must be a course GPT (with .emb and "
                        f".lm_head), got {type(model).__name__}")
    emb, head = model.emb.tok_emb.weight, model.lm_head.weight
    if emb.shape[0] <= ord("\n"):
        raise ValueError(f"init_chat_tokens: model's vocabulary ({emb.shape[0]}) has no room "
                         f"for the reserved bytes 1-3 and the newline")
    mean = emb.mean(dim=0)
    for char in (USER, ASSISTANT, END):
        emb[ord(char)] = mean
    head[ord(END)] = head[ord("\n")]


def show_chat(text: str) -> str:
    """The template with its reserved bytes written as readable names, for display."""
    if not isinstance(text, str):
        raise TypeError(f"show_chat: text must be a str, got {type(text).__name__}")
    for name, char in SPECIAL_TOKENS.items():
        text = text.replace(char, name)
    return text


def encode_chat(tokenizer, instruction: str, response: str) -> tuple[list[int], int]:
    """Token ids of the full chat and the number of prompt tokens (up to ``<|assistant|>``).

    Prompt and response are encoded separately and concatenated, so the boundary is exact.
    """
    if not callable(getattr(tokenizer, "encode", None)):
        raise TypeError(f"encode_chat: tokenizer must have an encode method, "
                        f"got {type(tokenizer).__name__}")
    _check_text("encode_chat: instruction", instruction)
    if not instruction.strip():
        raise ValueError("encode_chat: instruction is empty")
    _check_text("encode_chat: response", response)
    prompt = tokenizer.encode(format_chat(instruction))
    answer = tokenizer.encode(f" {response}{END}")
    if not answer or answer[-1] != ord(END):
        raise ValueError("encode_chat: the tokenizer merged the end token into the response")
    return prompt + answer, len(prompt)


def sft_batch(tokenizer, examples: list[dict], response_only: bool = True):
    """Right-padded inputs ``x`` (B, T) and targets ``y`` (B, T) for next-token training.

    ``y`` is ``x`` shifted by one; positions not trained are -100 (ignored by the loss): the
    padding always, and the prompt too when ``response_only``, so the model is taught to answer
    rather than to write questions. Causal attention means right padding never changes the
    earlier positions, so no attention mask is needed.
    """
    check_list("sft_batch", "examples", examples, of=dict)
    for e in examples:
        if "instruction" not in e or "response" not in e:
            raise ValueError(f"sft_batch: every example needs 'instruction' and 'response', "
                             f"got keys {sorted(e)}")
    seqs = [encode_chat(tokenizer, e["instruction"], e["response"]) for e in examples]
    return pad_batch(seqs, response_only)


def check_encoded(where: str, seqs, vocab_size: int = 2**63 - 1
                  ) -> list[tuple[list[int], int]]:
    """A non-empty list of ``(ids, n_prompt)`` pairs as ``encode_chat`` returns them: ids in
    [0, vocab_size), at least one prompt token and one response token each."""
    check_list(where, "seqs", seqs)
    out = []
    for j, pair in enumerate(seqs):
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            raise TypeError(f"{where}: seqs[{j}] must be a pair (ids, n_prompt), got {pair!r}")
        ids = check_ids(f"{where}: seqs[{j}]", pair[0], vocab_size)
        n_prompt = check_int(where, f"seqs[{j}] n_prompt", pair[1], low=1)
        if n_prompt >= len(ids):
            raise ValueError(f"{where}: seqs[{j}] has a prompt of {n_prompt} tokens but only "
                             f"{len(ids)} ids: no response token")
        out.append((ids, n_prompt))
    return out


def pad_batch(seqs: list[tuple[list[int], int]], response_only: bool = True):
    """``sft_batch`` for examples already encoded by ``encode_chat``: (ids, prompt length).
    Each sequence needs a prompt of at least one token and at least one response token
    (``1 <= n_prompt < len(ids)``)."""
    seqs = check_encoded("pad_batch", seqs)
    if not isinstance(response_only, bool):
        raise TypeError(f"pad_batch: response_only must be a bool, got {response_only!r}")
    t = max(len(ids) for ids, _ in seqs) - 1
    x = torch.zeros(len(seqs), t, dtype=torch.long)
    y = torch.full((len(seqs), t), -100, dtype=torch.long)
    for i, (ids, n_prompt) in enumerate(seqs):
        ids = torch.tensor(ids)
        x[i, : len(ids) - 1] = ids[:-1]
        y[i, : len(ids) - 1] = ids[1:]
        if response_only:
            y[i, : n_prompt - 1] = -100        # targets before the first response token
    return x, y


def sft_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the positions whose target is not -100 (the response only, when
    ``targets`` come from ``sft_batch(response_only=True)``)."""
    _check_logits_targets("sft_loss", logits, targets)
    if logits.shape[:-1] != targets.shape:
        raise ValueError(f"sft_loss: logits {tuple(logits.shape)} do not match targets "
                         f"{tuple(targets.shape)}")
    if not (targets != -100).any():
        raise ValueError("sft_loss: every target is masked (-100); nothing to learn")
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                           ignore_index=-100)


def sequence_logprobs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Sum over positions of log p(target) for each row, skipping -100: (B, T, V) -> (B,)."""
    _check_logits_targets("sequence_logprobs", logits, targets)
    if logits.dim() != 3:
        raise ValueError(f"sequence_logprobs: logits must be (B, T, V), got shape "
                         f"{tuple(logits.shape)}")
    if logits.shape[:-1] != targets.shape:
        raise ValueError(f"sequence_logprobs: logits {tuple(logits.shape)} do not match "
                         f"targets {tuple(targets.shape)}")
    logp = torch.log_softmax(logits.float(), dim=-1)
    keep = targets != -100
    picked = logp.gather(-1, targets.clamp(min=0)[..., None])[..., 0]   # (B, T)
    return (picked * keep).sum(dim=-1)


def _check_logits_targets(where: str, logits, targets) -> None:
    """Finite floating logits (..., V) and integer targets in [0, V) or -100."""
    check_tensor(where, "logits", logits, floating=True, min_dim=2, nonempty=True, finite=True)
    check_tensor(where, "targets", targets, floating=False)
    bad = (targets != -100) & ((targets < 0) | (targets >= logits.shape[-1]))
    if bad.any():
        raise ValueError(f"{where}: targets must be ids in [0, {logits.shape[-1]}) or -100, got "
                         f"{targets[bad][:5].tolist()}")


def _check_pair(where: str, name_a: str, a: torch.Tensor, name_b: str, b: torch.Tensor
                ) -> None:
    for name, t in ((name_a, a), (name_b, b)):
        check_tensor(where, name, t, floating=True, dims=(1,), finite=True)
        if t.numel() == 0:
            raise ValueError(f"{where}: {name} must be a non-empty 1-D tensor (one value per "
                             f"pair)")
    if a.shape != b.shape:
        raise ValueError(f"{where}: mismatched preference pairs: {name_a} has {a.numel()} "
                         f"values, {name_b} has {b.numel()}")


def reward_model_loss(chosen_rewards: torch.Tensor, rejected_rewards: torch.Tensor
                      ) -> torch.Tensor:
    """Bradley-Terry loss: mean of ``-log sigmoid(r_chosen - r_rejected)`` (Ouyang et al. 2022).

    Minimising it makes the reward model rank the chosen response above the rejected one
    with probability ``sigmoid(r_chosen - r_rejected)``.
    """
    _check_pair("reward_model_loss", "chosen_rewards", chosen_rewards, "rejected_rewards",
                rejected_rewards)
    return -F.logsigmoid(chosen_rewards - rejected_rewards).mean()


def dpo_loss(policy_chosen_logps: torch.Tensor, policy_rejected_logps: torch.Tensor,
             ref_chosen_logps: torch.Tensor, ref_rejected_logps: torch.Tensor,
             beta: float = 0.1) -> torch.Tensor:
    """The DPO loss (Rafailov et al. 2023, Eq. 7), mean over the batch.

    ``-log sigmoid(beta * [(log pi(y_w) - log ref(y_w)) - (log pi(y_l) - log ref(y_l))])``,
    each argument a (B,) tensor of summed log-probabilities of whole responses.
    """
    if isinstance(beta, bool) or not isinstance(beta, Real) or not math.isfinite(beta) \
            or beta <= 0:
        raise ValueError(f"dpo_loss: beta must be a positive finite number, got {beta!r}")
    _check_pair("dpo_loss", "policy_chosen_logps", policy_chosen_logps,
                "policy_rejected_logps", policy_rejected_logps)
    _check_pair("dpo_loss", "ref_chosen_logps", ref_chosen_logps, "ref_rejected_logps",
                ref_rejected_logps)
    if policy_chosen_logps.shape != ref_chosen_logps.shape:
        raise ValueError(f"dpo_loss: mismatched preference pairs: policy has "
                         f"{policy_chosen_logps.numel()}"
                         f" pairs, reference has {ref_chosen_logps.numel()}")
    margin = (policy_chosen_logps - ref_chosen_logps) - (policy_rejected_logps
                                                         - ref_rejected_logps)
    return -F.logsigmoid(beta * margin).mean()
