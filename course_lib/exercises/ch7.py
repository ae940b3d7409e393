"""Chapter 7 exercises: BM25, reciprocal rank fusion, recall@k."""

from __future__ import annotations

import math
from numbers import Integral

from course_lib.exercises import Case, Exercise, register


def bm25_scores(docs: list[list[str]], query: list[str], k1: float = 1.5,
                b: float = 0.75) -> list[float]:
    """Okapi BM25 of every document for the query, as rank-bm25's BM25Okapi scores it
    (for query terms that occur in fewer than half of the documents)."""
    if not isinstance(docs, list) or not docs or any(not isinstance(d, list) for d in docs):
        raise ValueError("docs must be a non-empty list of token lists")
    if not isinstance(query, list):
        raise TypeError("query must be a list of tokens")
    n = len(docs)
    avgdl = sum(len(d) for d in docs) / n
    scores = []
    for d in docs:
        score = 0.0
        for term in query:
            df = sum(term in other for other in docs)
            idf = math.log((n - df + 0.5) / (df + 0.5))
            tf = d.count(term)
            score += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len(d) / avgdl))
        scores.append(score)
    return scores


_DOCS = [
    "the cat sat on the mat".split(),
    "a dog chased the cat around the garden".split(),
    "stock markets fell sharply on monday".split(),
    "the garden was full of roses and tulips".split(),
    "a quiet morning with coffee and a book".split(),
    "the dog slept".split(),
]

register(Exercise(
    id="ch7.bm25", title="BM25 scores", kind="function",
    section="07_rag_agents.md",
    prompt=("Write bm25_scores(docs, query, k1=1.5, b=0.75): for every document (a list of "
            "tokens), sum over query terms idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * |d| / "
            "avgdl)), with idf = ln((N - df + 0.5) / (df + 0.5)). Return a list of floats. "
            "Raise ValueError for an empty corpus."),
    hint="df counts documents containing the term (not occurrences); |d| is the document's length.",
    reference=bm25_scores, atol=1e-9, rtol=1e-9,
    cases=lambda: [
        Case((_DOCS, ["cat"])),
        Case((_DOCS, ["dog", "garden"]), note="two terms"),
        Case((_DOCS, ["roses", "roses"]), note="a repeated query term counts twice"),
        Case((_DOCS, ["coffee"]), {"k1": 1.2, "b": 0.5}, note="other k1 and b"),
        Case((_DOCS, ["unicorn"]), note="a term in no document"),
    ],
    bad_cases=lambda: [Case(([], ["cat"]), note="empty corpus")],
))


def reciprocal_rank_fusion(rankings: list[list], k: int = 60) -> list:
    """Fuse rankings (best first) by summing 1 / (k + rank); ties keep first-seen order."""
    if not rankings:
        raise ValueError("rankings is empty")
    if isinstance(k, bool) or not isinstance(k, Integral) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    score: dict = {}
    for ranking in rankings:
        for rank, doc in enumerate(ranking, start=1):
            score[doc] = score.get(doc, 0.0) + 1.0 / (k + rank)
    return sorted(score, key=lambda doc: -score[doc])


register(Exercise(
    id="ch7.rrf", title="Reciprocal rank fusion", kind="function",
    section="07_rag_agents.md",
    prompt=("Write reciprocal_rank_fusion(rankings, k=60): rankings is a list of rankings, "
            "each a list of ids best first. Each id scores the sum over rankings of "
            "1 / (k + rank), rank starting at 1; return all ids, best first. Raise ValueError "
            "for no rankings or k < 1."),
    hint="Ranks start at 1, not 0; an id missing from a ranking adds nothing for it.",
    reference=reciprocal_rank_fusion,
    cases=lambda: [
        Case(([["a", "b", "c"], ["b", "c", "a"]],), note="b is high in both"),
        Case(([["a", "b", "c", "d"], ["d", "c"]], 1), note="k = 1"),
        Case(([[3, 1, 2], [1, 4], [4, 3]],), note="three rankings of ints"),
    ],
    bad_cases=lambda: [Case(([],), note="no rankings"), Case(([["a"]], 0), note="k = 0")],
))


def recall_at_k(ranked: list, relevant, k: int) -> float:
    """The share of the relevant ids that appear in the first k of the ranking."""
    if isinstance(k, bool) or not isinstance(k, Integral) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    relevant = set(relevant)
    if not relevant:
        raise ValueError("relevant is empty: recall is undefined")
    return len(relevant & set(ranked[:k])) / len(relevant)


register(Exercise(
    id="ch7.recall_at_k", title="recall@k", kind="function",
    section="07_rag_agents.md",
    prompt=("Write recall_at_k(ranked, relevant, k): the fraction of the relevant ids found in "
            "the first k ranked ids. Raise ValueError for k < 1 or no relevant ids."),
    hint="Divide by the number of relevant ids, not by k.",
    reference=recall_at_k,
    cases=lambda: [
        Case((["a", "b", "c"], ["b"], 1), note="the one relevant id is second"),
        Case((["a", "b", "c"], ["b"], 2)),
        Case((["a", "b", "c", "d"], ["a", "d", "z"], 3), note="three relevant, one unreachable"),
        Case((["a"], ["a"], 10), note="k larger than the ranking"),
    ],
    bad_cases=lambda: [Case((["a"], ["a"], 0), note="k = 0"),
                       Case((["a"], [], 1), note="nothing relevant")],
))
