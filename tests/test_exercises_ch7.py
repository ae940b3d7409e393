"""Exercises of page 7: every one has plausible wrong answers that fail with a useful
message, and the solutions agree with the course's own code."""

import math
import random

import numpy as np
import pytest
import torch

from course_lib.exercises import get, list_exercises, solution

PAGE = 7


def _pack_no_space(sentences, size):          # forgets the joining space when measuring
    chunks, current = [], ""
    for s in sentences:
        if current and len(current) + len(s) <= size:
            current += " " + s
        else:
            if current:
                chunks.append(current)
            current = s
    return chunks + ([current] if current else [])


def _pack_cuts_long(sentences, size):         # cuts a long sentence to fit instead
    out = []
    for c in solution("ch7.pack_sentences")(sentences, size):
        out += [c[i:i + size] for i in range(0, len(c), size)]
    return out


def _bm25_header_parts(docs, query, w, k1, b, epsilon, length_w, df_per_field, floor):
    """BM25 of (header, body) chunks with switches for three plausible mistakes."""
    n = len(docs)
    lengths = [length_w * len(h) + len(body) for h, body in docs]
    avgdl = sum(lengths) / n
    df = {}
    for h, body in docs:
        for field in ((h, body) if df_per_field else (h + body,)):
            for t in set(field):
                df[t] = df.get(t, 0) + 1
    idf = {t: math.log((n - f + 0.5) / (f + 0.5)) for t, f in df.items()}
    low = epsilon * sum(idf.values()) / len(idf)
    if floor:
        idf = {t: (v if v >= 0 else low) for t, v in idf.items()}
    out = []
    for (h, body), length in zip(docs, lengths):
        s = 0.0
        for t in query:
            tf = w * h.count(t) + body.count(t)
            s += idf.get(t, 0.0) * tf * (k1 + 1) / (tf + k1 * (1 - b + b * length / avgdl))
        out.append(s)
    return out


def _bm25_header_length_unweighted(docs, query, w=2.0, k1=1.5, b=0.75, epsilon=0.25):
    return _bm25_header_parts(docs, query, w, k1, b, epsilon, 1, False, True)


def _bm25_header_df_per_field(docs, query, w=2.0, k1=1.5, b=0.75, epsilon=0.25):
    return _bm25_header_parts(docs, query, w, k1, b, epsilon, w, True, True)


def _bm25_header_no_floor(docs, query, w=2.0, k1=1.5, b=0.75, epsilon=0.25):
    return _bm25_header_parts(docs, query, w, k1, b, epsilon, w, False, False)


def _ndcg_linear_gain(ranked, grades, k):
    dcg = sum(grades.get(x, 0) / math.log2(r + 1) for r, x in enumerate(ranked[:k], 1))
    best = sorted(grades.values(), reverse=True)[:k]
    return dcg / sum(g / math.log2(r + 1) for r, g in enumerate(best, 1))


def _ndcg_ideal_from_ranking(ranked, grades, k):
    def dcg(gs):
        return sum((2 ** g - 1) / math.log2(r + 1) for r, g in enumerate(gs, 1))
    got = [grades.get(x, 0) for x in ranked[:k]]
    return dcg(got) / dcg(sorted((grades.get(x, 0) for x in ranked), reverse=True)[:k])


def _interval_wald(hits):
    n, p = len(hits), sum(hits) / len(hits)
    half = 1.959964 * math.sqrt(p * (1 - p) / n)
    return max(0.0, p - half), min(1.0, p + half)


def _interval_90(hits):
    n, p = len(hits), sum(hits) / len(hits)
    z = 1.6448536
    shrink = 1 / (1 + z * z / n)
    centre, half = shrink * (p + z * z / (2 * n)), shrink * z * math.sqrt(
        p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def _maxsim_dot(q, d):                         # forgets to normalize
    s = q @ d.T
    best, where = s.max(dim=1)
    return float(best.sum()), where.tolist()


def _maxsim_over_doc(q, d):                    # the max down the columns, per document token
    q = q / q.norm(dim=1, keepdim=True)
    d = d / d.norm(dim=1, keepdim=True)
    best, where = (q @ d.T).max(dim=0)
    return float(best.sum()), where.tolist()


WRONG = {
    "ch7.pack_sentences": [_pack_no_space, _pack_cuts_long],
    "ch7.bm25_header": [_bm25_header_length_unweighted, _bm25_header_df_per_field,
                        _bm25_header_no_floor],
    "ch7.ndcg_graded": [_ndcg_linear_gain, _ndcg_ideal_from_ranking],
    "ch7.recall_interval": [_interval_wald, _interval_90],
    "ch7.maxsim_matches": [_maxsim_dot, _maxsim_over_doc],
}


def test_the_page_has_at_least_three_transfer_problems():
    assert sum(get(i).transfer for i in list_exercises(PAGE)) >= 3


def test_bm25_header_is_bm25_of_the_header_written_w_times():
    from rank_bm25 import BM25Okapi

    from course_lib import rag
    from course_lib.exercises.ch7 import _HDOCS

    for w in (1, 2, 3):   # a whole-number weight is the header repeated w times
        flat = [h * w + body for h, body in _HDOCS]
        bm25, ours = BM25Okapi(flat), rag.BM25(flat)
        for query in (["runa"], ["resident"], ["brandt", "cat"], ["harp", "harp"], ["ebba"]):
            got = solution("ch7.bm25_header")(_HDOCS, query, w=float(w))
            assert got == pytest.approx(bm25.get_scores(query).tolist(), rel=1e-12, abs=1e-12)
            assert got == pytest.approx(ours.scores(query), rel=1e-12, abs=1e-12)
        assert ours.idf["resident"] > 0       # the floor is in play on this corpus


def test_pack_sentences_keeps_every_sentence_whole_and_within_size_when_it_can():
    rng = random.Random(1)
    pack = solution("ch7.pack_sentences")
    for _ in range(50):
        sents = ["x" * rng.randint(1, 30) + "." for _ in range(rng.randint(1, 12))]
        size = rng.randint(5, 60)
        chunks = pack(sents, size)
        assert " ".join(chunks) == " ".join(sents)              # nothing lost or cut
        assert all(len(c) <= size or c in sents for c in chunks)


def test_ndcg_graded_with_binary_grades_is_the_course_ndcg():
    from course_lib import rag

    ranked = ["d3", "d1", "d7", "d2", "d9"]
    for relevant in ({"d1", "d2"}, {"d3"}, {"d9", "d4"}):
        for k in (1, 3, 5):
            assert solution("ch7.ndcg_graded")(ranked, dict.fromkeys(relevant, 1), k) == \
                pytest.approx(rag.ndcg_at_k(ranked, relevant, k))


def test_recall_interval_is_the_course_wilson_interval():
    from course_lib import evaluate

    for n in (1, 5, 12, 40):
        for s in range(n + 1):
            got = solution("ch7.recall_interval")([1] * s + [0] * (n - s))
            assert got == pytest.approx(evaluate.wilson_interval(s, n), abs=1e-12)


def test_maxsim_matches_is_the_course_maxsim_on_unit_vectors():
    from course_lib import rag

    g = torch.Generator().manual_seed(2)
    q, d = torch.randn(5, 16, generator=g), torch.randn(9, 16, generator=g)
    qn, dn = q / q.norm(dim=1, keepdim=True), d / d.norm(dim=1, keepdim=True)
    score, best = solution("ch7.maxsim_matches")(q, d)
    assert score == pytest.approx(rag.maxsim(qn.numpy(), dn.numpy()), rel=1e-5)
    assert best == np.argmax(qn.numpy() @ dn.numpy().T, axis=1).tolist()
