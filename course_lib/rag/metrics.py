"""Rank fusion and the retrieval metrics: recall@k, MRR, nDCG@k (one query, binary relevance).

Taught in book/07_rag_agents.md, "Evaluation" and "Hybrid".
"""

from __future__ import annotations

import math

__all__ = ["reciprocal_rank_fusion", "recall_at_k", "mrr", "ndcg_at_k"]


def _k(k, name):
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ValueError(f"{name}: k must be a positive int, got {k!r}")
    return k


def _relevant(relevant, name):
    if isinstance(relevant, str | bytes) or not isinstance(relevant, list | tuple | set |
                                                            frozenset):
        raise TypeError(f"{name}: relevant must be a list or set of ids, "
                        f"got {type(relevant).__name__}")
    rel = set(relevant)
    if not rel:
        raise ValueError(f"{name}: relevant is empty")
    return rel


def _ranked(ranked, name) -> list:
    if isinstance(ranked, str | bytes) or not isinstance(ranked, list | tuple):
        raise TypeError(f"{name}: ranked must be a list of ids, got {type(ranked).__name__}")
    return list(ranked)


def reciprocal_rank_fusion(rankings: list[list], k: int = 60) -> list:
    """Fuse rankings (each a list of ids, best first): score(id) = sum of 1 / (k + rank), rank
    counted from 1; ids best first, ties in order of first appearance (Cormack et al., 2009)."""
    if not isinstance(rankings, list | tuple) or not rankings:
        raise ValueError("reciprocal_rank_fusion: rankings must be a non-empty list of lists")
    if not isinstance(k, int | float) or isinstance(k, bool) or not k >= 0 or math.isinf(k):
        raise ValueError(f"reciprocal_rank_fusion: k must be a finite number >= 0, got {k!r}")
    score: dict = {}
    for ranking in rankings:
        if isinstance(ranking, str | bytes) or not isinstance(ranking, list | tuple):
            raise TypeError(f"reciprocal_rank_fusion: each ranking must be a list of ids, "
                            f"got {type(ranking).__name__}")
        if len(set(ranking)) != len(ranking):
            raise ValueError("reciprocal_rank_fusion: a ranking lists an id twice")
        for rank, item in enumerate(ranking, start=1):
            score[item] = score.get(item, 0.0) + 1.0 / (k + rank)
    first = {item: i for i, item in enumerate(score)}
    return sorted(score, key=lambda item: (-score[item], first[item]))


def recall_at_k(ranked: list, relevant, k: int) -> float:
    """The fraction of the relevant ids found in the first ``k`` of ``ranked``."""
    ranked, rel = _ranked(ranked, "recall_at_k"), _relevant(relevant, "recall_at_k")
    return len(rel & set(ranked[:_k(k, "recall_at_k")])) / len(rel)


def mrr(ranked: list, relevant, k: int | None = None) -> float:
    """Reciprocal rank of the first relevant id (0 if none in the first ``k``); MRR@10 is
    ``mrr(ranked, relevant, k=10)`` averaged over queries."""
    ranked, rel = _ranked(ranked, "mrr"), _relevant(relevant, "mrr")
    top = ranked if k is None else ranked[:_k(k, "mrr")]
    for rank, item in enumerate(top, start=1):
        if item in rel:
            return 1.0 / rank
    return 0.0


def ndcg_at_k(ranked: list, relevant, k: int) -> float:
    """Normalized discounted cumulative gain with binary gains: a relevant id at rank r earns
    1 / log2(r + 1); divided by the best possible ordering's sum."""
    ranked, rel = _ranked(ranked, "ndcg_at_k"), _relevant(relevant, "ndcg_at_k")
    k = _k(k, "ndcg_at_k")
    dcg = sum(1.0 / math.log2(r + 1) for r, item in enumerate(ranked[:k], start=1) if item in rel)
    ideal = sum(1.0 / math.log2(r + 1) for r in range(1, min(len(rel), k) + 1))
    return dcg / ideal
