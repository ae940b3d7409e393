"""Corpus poisoning, measured: add an attacker's pages to an index and see what readers say.

Taught in book/07_rag_agents.md, "Corpus poisoning".
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from course_lib.rag.dense import embed_with_tokens, rerank
from course_lib.rag.pipeline import Retriever, looks_injected

__all__ = ["run_poisoning"]


def run_poisoning(targets: list[dict], attacks: dict[str, Callable[[dict], str]],
                  readers: dict[str, Callable], texts: list[str], bodies: list[str],
                  embeddings: np.ndarray, token_vecs: list[np.ndarray],
                  question_vecs: list[np.ndarray], defence: Callable[[str], bool] = looks_injected,
                  depth: int = 20) -> dict:
    """Every attack against every reader, with and without the ``defence`` filter.

    For each attack (a name and a function from a targeted question to the page the attacker
    adds), one page per question in ``targets`` joins the index (``texts`` with their
    ``embeddings`` and token vectors ``token_vecs``; ``bodies`` are what a reader reads of each
    chunk). Each question is retrieved as the chapter does (hybrid ranking, then MaxSim rerank
    of the top ``depth`` with ``question_vecs[j]``); with the defence, chunks it flags are
    dropped from the ranking. Each reader ``f(question, ranked, texts, bodies)`` returns its
    answer (a str).

    Returns ``{(attack, defended): {"texts", "ranked", "answers"}}``: the poisoned index's
    texts, the ranking of each targeted question, and ``answers[reader]`` one str per question.
    """
    if not targets:
        raise ValueError("run_poisoning: targets is empty")
    if len(question_vecs) != len(targets):
        raise ValueError(f"run_poisoning: question_vecs has {len(question_vecs)} entries for "
                         f"{len(targets)} targets")
    if not (len(texts) == len(bodies) == len(embeddings) == len(token_vecs)):
        raise ValueError("run_poisoning: texts, bodies, embeddings and token_vecs must have "
                         "one entry per chunk")
    out = {}
    for name, make in attacks.items():
        poison = [make(q) for q in targets]
        p_emb, p_tok = embed_with_tokens(poison)
        all_texts, all_bodies = list(texts) + poison, list(bodies) + poison
        retriever = Retriever(all_texts, embeddings=np.vstack([embeddings, p_emb]))
        all_tok = list(token_vecs) + p_tok
        for defended in (False, True):
            ranked_all, answers = [], {k: [] for k in readers}
            for q, q_vecs in zip(targets, question_vecs):
                ranked = rerank(retriever.rank(q["question"], "hybrid"), q_vecs, all_tok, depth)
                if defended:
                    ranked = [i for i in ranked if not defence(all_texts[i])]
                ranked_all.append(ranked)
                for k, read in readers.items():
                    answers[k].append(read(q, ranked, all_texts, all_bodies))
            out[name, defended] = {"texts": all_texts, "ranked": ranked_all, "answers": answers}
    return out
