"""Retrieval pipeline: BM25 + dense + reciprocal rank fusion over passages, an extractive
reader that cites the chunk it used, and a filter against injected instructions.

Taught in book/07_rag_agents.md.
"""

from __future__ import annotations

import numbers
import re

from course_lib.rag.chunking import sentence_spans
from course_lib.rag.dense import DenseIndex
from course_lib.rag.metrics import reciprocal_rank_fusion
from course_lib.rag.sparse import BM25, tokenize

__all__ = ["Retriever", "read_answer", "word_overlap", "looks_injected",
           "STOPWORDS"]

METHODS = ("bm25", "dense", "hybrid")
STOPWORDS = frozenset(
    "a an the of in on at to for from by with and or is are was were be do does did what which "
    "who whom whose when where why how i my me you your it its this that these those as into "
    "can could should would will kind name called".split())


class Retriever:
    """BM25, dense and hybrid (RRF, k=60) ranking over the same list of texts."""

    def __init__(self, texts: list[str], dense: bool = True, embeddings=None, rrf_k: int = 60):
        if isinstance(texts, str) or not isinstance(texts, list | tuple) or not texts:
            raise ValueError("Retriever: texts must be a non-empty list of str")
        if any(not isinstance(t, str) for t in texts):
            raise TypeError("Retriever: every item of texts must be a str")
        if not isinstance(rrf_k, int | float) or isinstance(rrf_k, bool) or not rrf_k >= 0 \
                or rrf_k == float("inf"):
            raise ValueError(f"Retriever: rrf_k must be a finite number >= 0, got {rrf_k!r}")
        self.texts = list(texts)
        self.bm25 = BM25([tokenize(t) for t in self.texts])
        self.dense = None
        if dense or embeddings is not None:
            try:
                self.dense = (DenseIndex(embeddings=embeddings) if embeddings is not None
                              else DenseIndex(self.texts))
            except (TypeError, ValueError) as err:
                raise type(err)(f"Retriever: {err}") from None
            if len(self.dense) != len(self.texts):
                raise ValueError(f"Retriever: {len(self.dense)} embeddings for "
                                 f"{len(self.texts)} texts")
        self.rrf_k = rrf_k

    def __len__(self) -> int:
        return len(self.texts)

    def rank(self, query: str, method: str = "hybrid", k: int | None = None) -> list[int]:
        """Indices of the texts, best first; the first ``k`` (all, if ``k`` exceeds the corpus)."""
        if not isinstance(query, str):
            raise TypeError(f"Retriever.rank: query must be a str, got {type(query).__name__}")
        if method not in METHODS:
            raise ValueError(f"Retriever.rank: method must be one of {METHODS}, got {method!r}")
        if k is not None and (not isinstance(k, int) or isinstance(k, bool) or k < 1):
            raise ValueError(f"Retriever.rank: k must be a positive int, got {k!r}")
        if method != "bm25" and self.dense is None:
            raise ValueError("Retriever.rank: built with dense=False, only 'bm25' is available")
        if method == "bm25":
            order = self.bm25.rank(tokenize(query))
        elif method == "dense":
            order = self.dense.rank(query)
        else:
            order = reciprocal_rank_fusion(
                [self.bm25.rank(tokenize(query)), self.dense.rank(query)], k=self.rrf_k)
        return order[:k] if k else order


def _content(text: str) -> set[str]:
    return {w for w in tokenize(text) if w not in STOPWORDS}


def word_overlap(question: str, sentence: str) -> float:
    """How many content words (not stop words) a sentence shares with the question."""
    for name, text in (("question", question), ("sentence", sentence)):
        if not isinstance(text, str):
            raise TypeError(f"word_overlap: {name} must be a str, got {type(text).__name__}")
    return float(len(_content(question) & _content(sentence)))


def read_answer(question: str, passages: list[str], score=word_overlap,
                threshold: float | None = None) -> tuple[str, int]:
    """An extractive reader: the sentence of the passages that scores highest with the
    question (``score(question, sentence)``; shared content words by default; ties go to the
    better-ranked passage), and the index of the passage it came from, so the answer can cite
    its chunk. With ``threshold``, it reads the passages in rank order and stops at the first
    sentence that scores at least that much (trusting the retriever's order). With no
    passages, or nothing scoring above 0, it answers ("", -1)."""
    if not isinstance(question, str):
        raise TypeError("read_answer: question must be a str")
    if not callable(score):
        raise TypeError("read_answer: score must be callable")
    if isinstance(passages, str) or not isinstance(passages, list | tuple):
        raise TypeError(f"read_answer: passages must be a list of str, "
                        f"got {type(passages).__name__}")
    if any(not isinstance(p, str) for p in passages):
        raise TypeError("read_answer: every passage must be a str")
    if threshold is not None:
        if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real) \
                or threshold != threshold or abs(threshold) == float("inf"):
            raise ValueError(f"read_answer: threshold must be a finite number or None, "
                             f"got {threshold!r}")
    best, best_score = ("", -1), 0.0
    for i, passage in enumerate(passages):
        for a, b in sentence_spans(passage):
            sentence = passage[a:b].strip()
            s = score(question, sentence)
            if isinstance(s, bool) or not isinstance(s, numbers.Real) or s != s:
                raise ValueError(f"read_answer: score returned {s!r} for a sentence; it must "
                                 f"return a number (not NaN)")
            if threshold is not None and s >= threshold:
                return sentence, i
            if s > best_score:
                best, best_score = (sentence, i), s
    return best


_INJECTION = re.compile(
    r"\b(ignore|disregard|forget)\b[^.]{0,40}\b(instructions?|previous|above|documents?|context)"
    r"|\b(assistant|system prompt|you must|new instructions?)\b|https?://|\bwww\.|\.example\b",
    re.I)


def looks_injected(text: str) -> bool:
    """The chapter's defence: a passage that addresses the model (ignore the instructions, you
    must, assistant) or carries a link is treated as data that tries to give orders, and is
    dropped before the reader sees it. A pattern list: it stops the attacks it names, not all."""
    if not isinstance(text, str):
        raise TypeError("looks_injected: text must be a str")
    return bool(_INJECTION.search(text))
