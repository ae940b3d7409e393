"""Okapi BM25, scored the way rank-bm25's ``BM25Okapi`` scores it.

Taught in book/07_rag_agents.md, "Recall: BM25".
"""

from __future__ import annotations

import math
import re
from collections import Counter

__all__ = ["tokenize", "BM25"]

_TOKEN = re.compile(r"\w+")


def tokenize(text: str) -> list[str]:
    """Lower-cased words: the tokenizer BM25 uses throughout chapter 7."""
    if not isinstance(text, str):
        raise TypeError(f"tokenize: text must be a str, got {type(text).__name__}")
    return _TOKEN.findall(text.lower())


class BM25:
    """Okapi BM25 over tokenized documents.

    score(q, d) = sum over query terms t of idf(t) * f(t,d) * (k1 + 1)
                  / (f(t,d) + k1 * (1 - b + b * |d| / avgdl)),
    idf(t) = ln((N - n(t) + 0.5) / (n(t) + 0.5)); a term in more than half the documents
    would get a negative idf, and (as in rank-bm25) gets ``epsilon`` times the mean idf instead.
    """

    def __init__(self, docs: list[list[str]], k1: float = 1.5, b: float = 0.75,
                 epsilon: float = 0.25):
        if not isinstance(docs, list | tuple) or len(docs) == 0:
            raise ValueError("BM25: docs must be a non-empty list of token lists")
        if any(not isinstance(d, list | tuple) for d in docs):
            raise TypeError("BM25: each doc must be a list of tokens (use rag.tokenize)")
        if any(not isinstance(t, str) for d in docs for t in d):
            raise TypeError("BM25: docs must hold str tokens (use rag.tokenize)")
        for name, v in (("k1", k1), ("b", b), ("epsilon", epsilon)):
            if not isinstance(v, int | float) or isinstance(v, bool) or not math.isfinite(v):
                raise ValueError(f"BM25: {name} must be a finite number, got {v!r}")
        if k1 < 0 or not 0 <= b <= 1:
            raise ValueError(f"BM25: need k1 >= 0 and 0 <= b <= 1, got k1={k1}, b={b}")
        self.k1, self.b = float(k1), float(b)
        self.tf = [Counter(d) for d in docs]
        self.doc_len = [len(d) for d in docs]
        self.avgdl = sum(self.doc_len) / len(docs)
        if self.avgdl == 0:
            raise ValueError("BM25: every doc is empty")
        df = Counter(t for c in self.tf for t in c)
        n = len(docs)
        self.idf = {t: math.log(n - f + 0.5) - math.log(f + 0.5) for t, f in df.items()}
        floor = epsilon * sum(self.idf.values()) / len(self.idf)
        self.idf = {t: (v if v >= 0 else floor) for t, v in self.idf.items()}

    def __len__(self) -> int:
        return len(self.tf)

    def scores(self, query: list[str]) -> list[float]:
        """The BM25 score of every document for a tokenized query (repeated terms count twice)."""
        if isinstance(query, str) or not isinstance(query, list | tuple):
            raise TypeError("BM25.scores: query must be a list of tokens (use rag.tokenize)")
        if any(not isinstance(t, str) for t in query):
            raise TypeError(f"BM25.scores: query tokens must be str (use rag.tokenize), got "
                            f"{[t for t in query if not isinstance(t, str)][:3]!r}")
        out = [0.0] * len(self.tf)
        for t in query:
            idf = self.idf.get(t, 0.0)
            if idf == 0.0:
                continue
            for i, (tf, dl) in enumerate(zip(self.tf, self.doc_len)):
                f = tf.get(t, 0)
                if f:
                    norm = self.k1 * (1 - self.b + self.b * dl / self.avgdl)
                    out[i] += idf * f * (self.k1 + 1) / (f + norm)
        return out

    def rank(self, query: list[str], k: int | None = None) -> list[int]:
        """Document indices, best first (ties keep corpus order); the top ``k`` if given."""
        if k is not None:
            _check_k(k)
        s = self.scores(query)
        order = sorted(range(len(s)), key=lambda i: -s[i])
        return order if k is None else order[:k]


def _check_k(k) -> int:
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ValueError(f"BM25.rank: k must be a positive int, got {k!r}")
    return k
