"""Exercises of page 7: every one has plausible wrong answers that fail with a useful
message, and the solutions agree with the course's own code."""

import math

import pytest
import torch.nn.functional as F  # noqa: F401

from course_lib.exercises import check, get, list_exercises, solution

PAGE = 7


def _bm25_no_length(docs, query, k1=1.5, b=0.75):
    return solution("ch7.bm25")(docs, query, k1, 0.0)


def _bm25_lucene_idf(docs, query, k1=1.5, b=0.75):
    n = len(docs)
    avgdl = sum(map(len, docs)) / n
    out = []
    for d in docs:
        s = 0.0
        for t in query:
            df = sum(t in o for o in docs)
            idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
            tf = d.count(t)
            s += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len(d) / avgdl))
        out.append(s)
    return out


def _rrf_rank0(rankings, k=60):
    score = {}
    for r in rankings:
        for i, doc in enumerate(r):
            score[doc] = score.get(doc, 0.0) + 1.0 / (k + i)
    return sorted(score, key=lambda d: -score[d])


def _rrf_first_only(rankings, k=60):
    return list(dict.fromkeys(x for r in rankings for x in r))


def _recall_over_k(ranked, relevant, k):
    return len(set(relevant) & set(ranked[:k])) / k


def _recall_off_by_one(ranked, relevant, k):
    return len(set(relevant) & set(ranked[:k - 1])) / len(set(relevant))


WRONG = {
    "ch7.bm25": [_bm25_no_length, _bm25_lucene_idf],
    "ch7.rrf": [_rrf_rank0, _rrf_first_only],
    "ch7.recall_at_k": [_recall_over_k, _recall_off_by_one],
}


def test_every_exercise_of_the_page_has_wrong_answers():
    assert set(WRONG) == set(list_exercises(PAGE))


@pytest.mark.parametrize("exercise_id", list(WRONG))
def test_wrong_answers_fail_with_a_useful_message(exercise_id, capsys):
    ex = get(exercise_id)
    assert len(WRONG[exercise_id]) >= 2
    for wrong in WRONG[exercise_id]:
        assert check(exercise_id, wrong) is False, wrong
        out = capsys.readouterr().out
        assert out.startswith("✗") and "Traceback" not in out
        if ex.kind == "function":
            assert "Hint:" in out and "(" in out  # a hint, and the failing call to paste


def test_bm25_solution_matches_rank_bm25():
    from rank_bm25 import BM25Okapi

    from course_lib.exercises.ch7 import _DOCS

    bm25 = BM25Okapi(_DOCS)
    for query in (["cat"], ["dog", "garden"], ["roses", "roses"], ["coffee"]):
        ours = solution("ch7.bm25")(_DOCS, query)
        theirs = bm25.get_scores(query).tolist()
        assert ours == pytest.approx(theirs, rel=1e-12, abs=1e-12), query


def test_chapter_7_solutions_match_course_lib_rag():
    from course_lib import rag

    rankings = [["a", "b", "c", "d"], ["d", "c"], ["c", "x"]]
    for k in (1, 60):
        assert solution("ch7.rrf")(rankings, k) == rag.reciprocal_rank_fusion(rankings, k=k)
    ranked, relevant = ["a", "b", "c", "d"], ["a", "d", "z"]
    for k in (1, 2, 3, 4, 10):
        assert solution("ch7.recall_at_k")(ranked, relevant, k) == pytest.approx(
            rag.recall_at_k(ranked, relevant, k))
