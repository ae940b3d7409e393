"""Evaluating language models: perplexity, exact match, multiple choice by log-likelihood,
pairwise judging and win rate, an n-gram contamination check, and the uncertainty of a score
(Wilson interval, McNemar's test, paired bootstrap).

Taught in book/05_finetuning.md (and used again in book/06_inference.md).
"""

from __future__ import annotations

import math
import numbers
import operator
import string
from statistics import NormalDist

import numpy as np
import torch

from ._checks import check_float, check_ids, check_int, check_list
from .align import check_encoded, encode_chat
from .train import check_windows, window_loss

__all__ = ["perplexity", "normalize_answer", "exact_match", "greedy_answers_match",
           "greedy_matches", "choice_logprobs", "multiple_choice_accuracy", "pairwise_judge",
           "win_rate", "ngrams", "ngram_contamination", "wilson_interval", "mcnemar",
           "paired_bootstrap"]

ARTICLES = frozenset({"a", "an", "the"})


@torch.no_grad()
def perplexity(model, tokens: torch.Tensor, block_size: int | None = None,
               max_windows: int | None = None) -> float:
    """``exp`` of the mean next-token cross-entropy over non-overlapping windows of ``tokens``.

    ``model(x, y)`` must return ``(logits, loss)``. Perplexity is the number of equally likely
    tokens the model is, on average, choosing among: 1 is certainty, the vocabulary size is a
    uniform guess.
    """
    block, n_windows = check_windows("perplexity", model, tokens, block_size)
    if max_windows is not None:
        n_windows = min(n_windows, check_int("perplexity", "max_windows", max_windows, low=1))
    return math.exp(window_loss(model, tokens, block, 16, n_windows))


def _vocab(where: str, model) -> int:
    """The vocabulary size of a course model (ids must lie below it); a wrapper without a
    ``config`` (``peft.PromptTuning``) is checked against its inner model's."""
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"{where}: model must be a torch nn.Module, got {type(model).__name__}")
    config = getattr(model, "config", None) or getattr(getattr(model, "model", None), "config",
                                                       None)
    return getattr(config, "vocab_size", 2**63 - 1)


def _words(text: str, caller: str) -> list[str]:
    """Lower-cased words of ``text`` with ASCII punctuation deleted."""
    if not isinstance(text, str):
        raise TypeError(f"{caller}: text must be a str, got {type(text).__name__}")
    return text.lower().translate(str.maketrans("", "", string.punctuation)).split()


def normalize_answer(text: str) -> str:
    """The SQuAD convention for exact match: lower case, no punctuation, no articles
    (a, an, the as whole words), single spaces. "The Fox." and "fox" are the same answer;
    "theory" keeps its "the"."""
    return " ".join(w for w in _words(text, "normalize_answer") if w not in ARTICLES)


def exact_match(predictions: list[str], answers: list[str]) -> float:
    """Fraction of predictions equal to their answer after ``normalize_answer``, in [0, 1]."""
    check_list("exact_match", "predictions", predictions, of=str, nonempty=False)
    check_list("exact_match", "answers", answers, of=str, nonempty=False)
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
    check_list("greedy_answers_match", "examples", examples, of=dict)
    seqs = [encode_chat(tokenizer, e["instruction"], e["response"]) for e in examples]
    return greedy_matches(model, seqs, batch_size)


@torch.no_grad()
def greedy_matches(model, seqs: list[tuple[list[int], int]], batch_size: int = 64
                   ) -> list[bool]:
    """For each encoded ``(ids, n_prompt)``: is every token after the prompt the model's
    argmax given the tokens before it? That is, does greedy decoding from ``ids[:n_prompt]``
    write ``ids[n_prompt:]``? One teacher-forced forward pass per batch."""
    seqs = check_encoded("greedy_matches", seqs, _vocab("greedy_matches", model))
    batch_size = check_int("greedy_matches", "batch_size", batch_size, low=1)
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
    vocab = _vocab("choice_logprobs", model)
    context_ids = check_ids("choice_logprobs: context_ids", context_ids, vocab)
    choices_ids = [check_ids("choice_logprobs: choices_ids", c, vocab) for c in
                   check_list("choice_logprobs", "choices_ids", choices_ids)]
    if not context_ids or any(not c for c in choices_ids):
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
    where = "multiple_choice_accuracy"
    check_list(where, "items", items, of=dict)
    if not isinstance(normalize, bool):
        raise TypeError(f"{where}: normalize must be a bool, got {normalize!r}")
    for j, item in enumerate(items):
        if not {"context_ids", "choices_ids", "answer"} <= set(item):
            raise ValueError(f"{where}: items[{j}] needs context_ids, choices_ids and answer, "
                             f"got keys {sorted(item)}")
        n = len(item["choices_ids"]) if isinstance(item["choices_ids"], list | tuple) else 0
        check_int(where, f"items[{j}]['answer']", item["answer"], low=0, high=max(n - 1, 0))
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
    if not callable(score_fn):
        raise TypeError(f"pairwise_judge: score_fn must be callable, got {score_fn!r}")
    for name, text in (("question", question), ("answer_a", answer_a), ("answer_b", answer_b)):
        if not isinstance(text, str):
            raise TypeError(f"pairwise_judge: {name} must be a str, got {type(text).__name__}")
    out = score_fn(question, answer_a, answer_b)
    if not isinstance(out, tuple | list) or len(out) != 2:
        raise TypeError(f"pairwise_judge: score_fn must return two scores, got {out!r}")
    if any(isinstance(v, numbers.Real) and v != v for v in out):
        raise ValueError(f"pairwise_judge: score_fn returned NaN ({out!r})")
    first = check_float("pairwise_judge", "score_fn's first score", out[0])
    second = check_float("pairwise_judge", "score_fn's second score", out[1])
    return 0 if first >= second else 1


def win_rate(preferences: list[int]) -> float:
    """Fraction of comparisons won by the first system (preference 0); ties not allowed."""
    preferences = check_list("win_rate", "preferences", preferences)
    if any(isinstance(p, bool) or p not in (0, 1) for p in preferences):
        raise ValueError("win_rate: each preference must be 0 (first wins) or 1 (second)")
    return preferences.count(0) / len(preferences)


def ngrams(words: list[str], n: int) -> set[tuple[str, ...]]:
    """The set of ``n``-word windows of ``words`` (empty when there are fewer than ``n``)."""
    check_list("ngrams", "words", words, of=str, nonempty=False)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"ngrams: n must be a positive int, got {n!r}")
    return {tuple(words[i: i + n]) for i in range(len(words) - n + 1)}


def ngram_contamination(train_texts: list[str], test_texts: list[str], n: int = 13
                        ) -> float:
    """Fraction of test texts that share at least one word ``n``-gram with the training texts.

    GPT-3's contamination study flagged a test example on any shared 13-gram. Texts shorter
    than ``n`` words cannot be flagged.
    """
    check_list("ngram_contamination", "train_texts", train_texts, of=str)
    check_list("ngram_contamination", "test_texts", test_texts, of=str)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"ngram_contamination: n must be a positive int, got {n!r}")
    seen: set[tuple[str, ...]] = set()
    for text in train_texts:
        seen |= ngrams(_words(text, "ngram_contamination"), n)
    # articles stay: the check counts the words as written, not answer equivalence
    flagged = [bool(ngrams(_words(t, "ngram_contamination"), n) & seen) for t in test_texts]
    return sum(flagged) / len(flagged)


# ---- how sure is a score? -------------------------------------------------------------------

MAX_COUNT = 2**53            # float64 holds every count up to here exactly
MAX_ITEMS = 10_000_000       # items per call (80 MB as float64)
MAX_RESAMPLES = 1_000_000    # bootstrap resamples (their means take 8 MB)
MAX_RESAMPLE_DRAWS = 2 * 10**8   # bootstrap resamples x items: a few seconds on one core
_DRAWS_PER_CHUNK = 2**20     # the bootstrap's index block, 8 MB at a time


def _count(caller: str, name: str, value, low: int = 0, high: int = MAX_COUNT) -> int:
    if isinstance(value, (bool, np.bool_)) or (isinstance(value, torch.Tensor)
                                                and value.dtype == torch.bool):
        raise TypeError(f"{caller}: {name} must be an int, got a bool ({value!r})")
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"{caller}: {name} must be an int, got {type(value).__name__} "
                        f"{value!r}") from None
    if not low <= value <= high:
        raise ValueError(f"{caller}: {name} must be in [{low}, {high}], got {value}")
    return value


def _confidence(caller: str, confidence) -> float:
    if isinstance(confidence, bool) or not isinstance(confidence, numbers.Real):
        raise TypeError(f"{caller}: confidence must be a float in (0, 1), got {confidence!r}")
    if not 0 < confidence < 1:                                      # NaN fails this too
        raise ValueError(f"{caller}: confidence must be in (0, 1), got {confidence!r}")
    return float(confidence)


def _vector(caller: str, name: str, values) -> np.ndarray:
    """``values`` as a non-empty 1-D numeric array (bool, int or float)."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    if isinstance(values, np.ndarray) and values.ndim != 1:
        raise ValueError(f"{caller}: {name} must be 1-D, got shape {values.shape}")
    if isinstance(values, (str, bytes, dict, set, frozenset)) or not hasattr(values, "__len__"):
        raise TypeError(f"{caller}: {name} must be a sequence, array or tensor of numbers, "
                        f"got {type(values).__name__}")
    if len(values) > MAX_ITEMS:                  # before copying a huge list into an array
        raise ValueError(f"{caller}: {name} has {len(values)} items, more than {MAX_ITEMS}")
    try:
        arr = np.asarray(values)
    except (ValueError, TypeError) as err:               # ragged nesting
        raise ValueError(f"{caller}: {name} must be a flat sequence of numbers ({err})") from None
    if arr.ndim != 1:
        raise ValueError(f"{caller}: {name} must be 1-D, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{caller}: {name} is empty")
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{caller}: {name} must hold numbers, got dtype {arr.dtype}")
    return arr


def _paired(caller: str, a, b, a_name: str, b_name: str) -> tuple[np.ndarray, np.ndarray]:
    a, b = _vector(caller, a_name, a), _vector(caller, b_name, b)
    if len(a) != len(b):
        raise ValueError(f"{caller}: {a_name} has {len(a)} items, {b_name} has {len(b)}; "
                         f"they must score the same items")
    return a, b


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval for a proportion ``successes / n``: the ``p`` a two-sided
    score test at this confidence does not reject. Unlike the normal (Wald) interval
    ``p +- z sqrt(p(1-p)/n)`` it stays inside [0, 1] and is not zero-width at 0/n or n/n."""
    n = _count("wilson_interval", "n", n, low=1)
    successes = _count("wilson_interval", "successes", successes, high=n)
    z = NormalDist().inv_cdf(0.5 + _confidence("wilson_interval", confidence) / 2)
    p = successes / n
    shrink = 1 / (1 + z * z / n)               # pulls the centre toward 1/2 by z^2 pseudo-trials
    centre = shrink * (p + z * z / (2 * n))
    half = shrink * z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    # at 0 or n successes the bound is exactly 0 or 1; rounding must not move it
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


def _fair_coin_two_sided_p(k: int, n: int) -> float:
    """Exact two-sided p-value of ``k`` heads in ``n`` fair coin flips (n >= 1)."""
    tail = min(k, n - k)
    if 2 * tail == n:
        return 1.0
    i = torch.arange(tail + 1, dtype=torch.float64)
    log_pmf = (math.lgamma(n + 1) - torch.lgamma(i + 1) - torch.lgamma(n - i + 1)
               - n * math.log(2))
    # the fair binomial is symmetric: the other tail has the same mass
    return min(1.0, 2 * math.exp(float(torch.logsumexp(log_pmf, dim=0))))


def mcnemar(a_correct, b_correct) -> float:
    """Is method A's accuracy different from method B's on these items? The exact McNemar test.

    ``a_correct[i]`` and ``b_correct[i]`` (bools or 0/1) say whether A and B got item ``i``
    right. Items both got right or both got wrong say nothing about which is better; of the
    discordant items, under "equally accurate" each is A's win with probability 1/2. Returns
    the two-sided binomial p-value of A's wins among the discordant items (1 if there are
    none). A small p-value says the gap is unlikely to be luck of which items were drawn;
    it says nothing about how large the gap is.
    """
    a, b = _paired("mcnemar", a_correct, b_correct, "a_correct", "b_correct")
    for name, arr in (("a_correct", a), ("b_correct", b)):
        if arr.dtype.kind != "b" and not np.isin(arr, (0, 1)).all():
            raise ValueError(f"mcnemar: {name} must hold only bools or 0/1")
    a, b = a.astype(bool), b.astype(bool)
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    if only_a + only_b == 0:
        return 1.0
    return _fair_coin_two_sided_p(only_a, only_a + only_b)


def paired_bootstrap(a_scores, b_scores, n: int = 10_000, seed: int = 0,
                     confidence: float = 0.95) -> tuple[float, float, float]:
    """``(mean(a - b), low, high)``: the mean per-item score difference of methods A and B on
    the same items, and its percentile bootstrap interval.

    Each of ``n`` resamples draws len(items) items with replacement and takes the mean
    difference on them; A and B are resampled together (the same items), so what the two
    methods have in common (an easy item is easy for both) cancels. The interval is the
    central ``confidence`` share of the resampled means. Deterministic for a ``seed``.
    """
    a, b = _paired("paired_bootstrap", a_scores, b_scores, "a_scores", "b_scores")
    n = _count("paired_bootstrap", "n", n, low=1, high=MAX_RESAMPLES)
    seed = _count("paired_bootstrap", "seed", seed, high=2**64 - 1)
    alpha = (1 - _confidence("paired_bootstrap", confidence)) / 2
    diff = torch.from_numpy(a.astype(np.float64) - b.astype(np.float64))    # (items,)
    if not torch.isfinite(diff).all():
        raise ValueError("paired_bootstrap: a_scores and b_scores must be finite (no NaN/inf)")
    items = len(diff)
    if n * items > MAX_RESAMPLE_DRAWS:
        raise ValueError(f"paired_bootstrap: n={n} resamples of {items} items is more than "
                         f"{MAX_RESAMPLE_DRAWS} draws; lower n")
    mean_diff = math.fsum(diff.tolist()) / items                # correctly rounded sum
    gen = torch.Generator().manual_seed(seed)
    rows = max(1, _DRAWS_PER_CHUNK // items)
    means = torch.empty(n, dtype=torch.float64)
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        picks = torch.randint(items, (stop - start, items), generator=gen)  # (rows, items)
        means[start:stop] = diff[picks].mean(dim=1)
    low, high = torch.quantile(means, torch.tensor([alpha, 1 - alpha], dtype=torch.float64))
    return mean_diff, float(low), float(high)
