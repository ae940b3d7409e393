"""Evaluating language models: perplexity, exact match, multiple choice by log-likelihood,
pairwise judging and win rate, and an n-gram contamination check.

Taught in book/05_finetuning.md (and used again in book/06_inference.md).
"""

from __future__ import annotations

import math
import string

import torch

from .align import encode_chat

__all__ = ["perplexity", "normalize_answer", "exact_match", "greedy_answers_match",
           "greedy_matches", "choice_logprobs", "multiple_choice_accuracy", "pairwise_judge",
           "win_rate", "ngrams", "ngram_contamination"]


@torch.no_grad()
def perplexity(model, tokens: torch.Tensor, block_size: int | None = None,
               max_windows: int | None = None) -> float:
    """``exp`` of the mean next-token cross-entropy over non-overlapping windows of ``tokens``.

    ``model(x, y)`` must return ``(logits, loss)``. Perplexity is the number of equally likely
    tokens the model is, on average, choosing among: 1 is certainty, the vocabulary size is a
    uniform guess.
    """
    if not isinstance(tokens, torch.Tensor) or tokens.dim() != 1:
        raise ValueError("perplexity: tokens must be a 1-D tensor of token ids")
    if tokens.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"perplexity: tokens must be integer ids, got {tokens.dtype}")
    block = model.config.block_size if block_size is None else block_size
    n_windows = (len(tokens) - 1) // block
    if n_windows < 1:
        raise ValueError(f"perplexity: need more than block_size={block} tokens, got "
                         f"{len(tokens)}")
    if max_windows is not None:
        n_windows = min(n_windows, max_windows)
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for start in range(0, n_windows, 16):
        idx = range(start, min(start + 16, n_windows))
        x = torch.stack([tokens[i * block: (i + 1) * block] for i in idx])
        y = torch.stack([tokens[i * block + 1: (i + 1) * block + 1] for i in idx])
        _, loss = model(x, y)
        total += loss.item() * y.numel()
        count += y.numel()
    model.train(was_training)
    return math.exp(total / count)


def normalize_answer(text: str) -> str:
    """Lower case, no punctuation, single spaces (the SQuAD convention for exact match)."""
    if not isinstance(text, str):
        raise TypeError(f"normalize_answer: expected str, got {type(text).__name__}")
    text = text.lower().translate(str.maketrans("", "", string.punctuation))
    return " ".join(text.split())


def exact_match(predictions: list[str], answers: list[str]) -> float:
    """Fraction of predictions equal to their answer after ``normalize_answer``, in [0, 1]."""
    if isinstance(predictions, str) or isinstance(answers, str):
        raise TypeError("exact_match: predictions and answers must be lists of strings")
    if len(predictions) != len(answers):
        raise ValueError(f"exact_match: {len(predictions)} predictions for {len(answers)} "
                         f"answers")
    if not predictions:
        raise ValueError("exact_match: predictions is empty")
    hits = [normalize_answer(p) == normalize_answer(a) for p, a in zip(predictions, answers)]
    return sum(hits) / len(hits)


@torch.no_grad()
def greedy_answers_match(model, tokenizer, examples: list[dict], batch_size: int = 64
                         ) -> list[bool]:
    """For each chat example, does greedy decoding produce exactly ``response<|end|>``?

    Greedy decoding picks the argmax at every step, so it reproduces the reference if and only
    if the reference token is the argmax at each of its positions given the reference so far.
    That is one teacher-forced forward pass instead of a decoding loop: the same answer as
    ``generate(temperature=0)`` followed by an exact-match check, many times cheaper.
    """
    if not examples:
        raise ValueError("greedy_answers_match: examples is empty")
    seqs = [encode_chat(tokenizer, e["instruction"], e["response"]) for e in examples]
    return greedy_matches(model, seqs, batch_size)


@torch.no_grad()
def greedy_matches(model, seqs: list[tuple[list[int], int]], batch_size: int = 64
                   ) -> list[bool]:
    """For each encoded ``(ids, n_prompt)``: is every token after the prompt the model's
    argmax given the tokens before it? That is, does greedy decoding from ``ids[:n_prompt]``
    write ``ids[n_prompt:]``? One teacher-forced forward pass per batch."""
    was_training = model.training
    model.eval()
    out = []
    for start in range(0, len(seqs), batch_size):
        chunk = seqs[start: start + batch_size]
        t = max(len(ids) for ids, _ in chunk) - 1
        x = torch.zeros(len(chunk), t, dtype=torch.long)
        for i, (ids, _) in enumerate(chunk):
            x[i, : len(ids) - 1] = torch.tensor(ids[:-1])
        pred = model(x)[0].argmax(dim=-1)                                # (B, T)
        for i, (ids, n_prompt) in enumerate(chunk):
            want = torch.tensor(ids[n_prompt:])
            out.append(bool((pred[i, n_prompt - 1: len(ids) - 1] == want).all()))
    model.train(was_training)
    return out


@torch.no_grad()
def choice_logprobs(model, context_ids: list[int], choices_ids: list[list[int]]
                    ) -> list[tuple[float, int]]:
    """(summed log-probability, token count) of each choice as a continuation of the context."""
    if not context_ids or not choices_ids or any(not c for c in choices_ids):
        raise ValueError("choice_logprobs: context and every choice need at least one token")
    t = len(context_ids) + max(len(c) for c in choices_ids) - 1
    x = torch.zeros(len(choices_ids), t, dtype=torch.long)
    for i, c in enumerate(choices_ids):
        seq = context_ids + c
        x[i, : len(seq) - 1] = torch.tensor(seq[:-1])
    logp = torch.log_softmax(model(x)[0].float(), dim=-1)                # (n_choices, T, V)
    out = []
    for i, c in enumerate(choices_ids):
        pos = torch.arange(len(context_ids) - 1, len(context_ids) - 1 + len(c))
        out.append((float(logp[i, pos, torch.tensor(c)].sum()), len(c)))
    return out


def multiple_choice_accuracy(model, items: list[dict], normalize: bool) -> float:
    """Accuracy over ``items`` ``{"context_ids", "choices_ids", "answer"}`` (answer = index).

    ``normalize=False`` picks the choice with the highest summed log-probability;
    ``normalize=True`` divides by the choice's token count first (per-token average), the
    two conventions evaluation harnesses report as ``acc`` and ``acc_norm``-like scores.
    """
    if not items:
        raise ValueError("multiple_choice_accuracy: items is empty")
    hits = 0
    for item in items:
        scores = choice_logprobs(model, item["context_ids"], item["choices_ids"])
        values = [s / n if normalize else s for s, n in scores]
        hits += int(max(range(len(values)), key=values.__getitem__) == item["answer"])
    return hits / len(items)


def pairwise_judge(score_fn, question: str, answer_a: str, answer_b: str) -> int:
    """0 if the judge prefers ``answer_a`` (shown first), 1 for ``answer_b``.

    ``score_fn(question, first, second) -> (score_first, score_second)`` is the judge; it sees
    the answers in the order given, so a judge with a position bias can contradict itself when
    the order swaps.
    """
    first, second = score_fn(question, answer_a, answer_b)
    if math.isnan(first) or math.isnan(second):
        raise ValueError("pairwise_judge: the judge returned NaN")
    return 0 if first >= second else 1


def win_rate(preferences: list[int]) -> float:
    """Fraction of comparisons won by the first system (preference 0); ties not allowed."""
    if not preferences:
        raise ValueError("win_rate: preferences is empty")
    if any(p not in (0, 1) for p in preferences):
        raise ValueError("win_rate: each preference must be 0 (first wins) or 1 (second)")
    return preferences.count(0) / len(preferences)


def ngrams(words: list[str], n: int) -> set[tuple[str, ...]]:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"ngrams: n must be a positive int, got {n!r}")
    return {tuple(words[i: i + n]) for i in range(len(words) - n + 1)}


def ngram_contamination(train_texts: list[str], test_texts: list[str], n: int = 13
                        ) -> float:
    """Fraction of test texts that share at least one word ``n``-gram with the training texts.

    GPT-3's contamination study flagged a test example on any shared 13-gram. Texts shorter
    than ``n`` words cannot be flagged.
    """
    if not train_texts or not test_texts:
        raise ValueError("ngram_contamination: train_texts and test_texts must be non-empty")
    seen: set[tuple[str, ...]] = set()
    for text in train_texts:
        seen |= ngrams(normalize_answer(text).split(), n)
    flagged = [bool(ngrams(normalize_answer(t).split(), n) & seen) for t in test_texts]
    return sum(flagged) / len(flagged)
