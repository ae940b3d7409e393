"""Chapter 7 exercises (RAG): a chunker that keeps sentences whole, BM25 with a weighted header,
nDCG for graded relevance, an interval for a measured recall, MaxSim's matches.

Registered in page order; the statements are in book/07_rag_agents.md, "Exercises"."""

from __future__ import annotations

import math
import random
from numbers import Integral
from statistics import NormalDist

import torch

from course_lib.exercises import Case, Exercise, register

PAGE = "07_rag_agents.md"


# ------------------------------------------------------------ 1. chunks of whole sentences
def pack_sentences(sentences: list[str], size: int) -> list[str]:
    """Greedy chunks of whole sentences: each chunk is consecutive sentences joined by one
    space, as many as fit in ``size`` characters; a sentence longer than ``size`` is a chunk
    of its own, never cut."""
    if isinstance(sentences, str) or not isinstance(sentences, list):
        raise TypeError("pack_sentences: sentences must be a list of str")
    if any(not isinstance(s, str) or not s for s in sentences):
        raise ValueError("pack_sentences: every sentence must be a non-empty str")
    if isinstance(size, bool) or not isinstance(size, Integral) or size < 1:
        raise ValueError(f"pack_sentences: size must be a positive int, got {size!r}")
    chunks: list[str] = []
    current = ""
    for s in sentences:
        if current and len(current) + 1 + len(s) <= size:
            current += " " + s
        else:
            if current:
                chunks.append(current)
            current = s                     # may be longer than size: kept whole
    if current:
        chunks.append(current)
    return chunks


def _sentence_cases():
    rng = random.Random(7)
    words = "the harp plays Runa at noon in Veldmoor a bakery on Mill Lane".split()
    cases = []
    for n, size in ((6, 40), (9, 25), (12, 80)):
        sents = [" ".join(rng.choice(words) for _ in range(rng.randint(1, 7))) + "."
                 for _ in range(n)]
        cases.append(Case((sents, size), note=f"{n} random sentences, size {size}"))
    return [
        Case((["Runa plays the harp.", "She lives on Mill Lane."], 50),
             note="both fit: 20 + 1 + 23 = 44 characters"),
        Case((["Runa plays the harp.", "She lives on Mill Lane."], 43),
             note="one short of fitting together: the space counts"),
        Case((["Runa plays the harp.", "She lives on Mill Lane."], 44), note="exactly fits"),
        Case((["Hi.", "A sentence far longer than the chunk size.", "Ok."], 10),
             note="a sentence longer than size is a chunk of its own, whole"),
        Case(([], 10), note="no sentences: no chunks"),
    ] + cases


register(Exercise(
    id="ch7.pack_sentences", title="Chunks that keep sentences whole", kind="function",
    section=PAGE, transfer=True,
    prompt=("Write pack_sentences(sentences, size): greedy chunks of consecutive whole "
            "sentences joined by one space, each at most size characters; a sentence longer "
            "than size is a chunk of its own. ValueError for size < 1."),
    hint=("Count the joining space: adding sentence s to a chunk c makes it len(c) + 1 + len(s) "
          "long. A sentence that does not fit starts the next chunk, whole, even when it alone "
          "is longer than size."),
    reference=pack_sentences,
    cases=_sentence_cases,
    bad_cases=lambda: [Case((["One."], 0), note="size 0"),
                       Case(("One. Two.", 10), note="a str, not a list of sentences")],
    why=("Section 2's character chunker cuts wherever the count runs out, so a fact can be split "
         "across two chunks; this one cuts only between sentences. Walk the sentences once, "
         "keeping the chunk being built: if the next sentence fits (its length, plus one for the "
         "joining space, plus the chunk so far is at most `size`) append it, else close the "
         "chunk and start a new one with that sentence. A sentence longer than `size` starts a "
         "chunk, fits nothing after it, and so stands alone: the budget is broken rather than the "
         "sentence, which is the point of the method (a retriever can still find it; a prompt "
         "builder must then count it). Chunks come out at most `size` long except for those "
         "single long sentences, and joining the chunks with spaces gives back the text."),
))


# ---------------------------------------------- 2. BM25 with a weighted header, and its floor
def bm25_header(docs: list[tuple[list[str], list[str]]], query: list[str], w: float = 2.0,
                k1: float = 1.5, b: float = 0.75, epsilon: float = 0.25) -> list[float]:
    """BM25 of chunks that have two fields, a header and a body, with the header's words
    counted ``w`` times (in the term frequency and in the length); idf as rank-bm25's
    BM25Okapi, a negative idf replaced by ``epsilon`` times the mean idf of the corpus's
    terms. With ``w = 1`` it is BM25 of header + body."""
    if not isinstance(docs, list) or not docs:
        raise ValueError("bm25_header: docs must be a non-empty list of (header, body) pairs")
    if any(not isinstance(d, tuple | list) or len(d) != 2
           or not all(isinstance(part, list) for part in d) for d in docs):
        raise ValueError("bm25_header: every doc must be a (header, body) pair of token lists")
    if not isinstance(query, list):
        raise TypeError("bm25_header: query must be a list of tokens")
    if isinstance(w, bool) or not isinstance(w, int | float) or not w >= 0:
        raise ValueError(f"bm25_header: w must be a number >= 0, got {w!r}")
    n = len(docs)
    lengths = [w * len(h) + len(body) for h, body in docs]   # the header counts w times
    avgdl = sum(lengths) / n
    df: dict[str, int] = {}
    for h, body in docs:
        for t in set(h) | set(body):                         # one document, whichever field
            df[t] = df.get(t, 0) + 1
    idf = {t: math.log((n - f + 0.5) / (f + 0.5)) for t, f in df.items()}
    floor = epsilon * sum(idf.values()) / len(idf)      # the mean over all terms, negatives too
    idf = {t: (v if v >= 0 else floor) for t, v in idf.items()}
    scores = []
    for (h, body), length in zip(docs, lengths):
        score = 0.0
        for term in query:
            tf = w * h.count(term) + body.count(term)
            norm = k1 * (1 - b + b * length / avgdl)
            score += idf.get(term, 0.0) * tf * (k1 + 1) / (tf + norm)
        scores.append(score)
    return scores


_HDOCS = [  # (header, body): a resident's name, then sentences that call them by first name
    ("runa stadol resident".split(), "runa plays the harp".split()),
    ("runa velk resident".split(), "she keeps a cat".split()),
    ("ebba halgri resident".split(), "ebba bakes bread on mill lane".split()),
    ("ove brandt resident".split(), "the cat sleeps".split()),
    ("runa brandt resident".split(), "runa works as a stonemason".split()),
]

register(Exercise(
    id="ch7.bm25_header", title="BM25 with a weighted header", kind="function",
    section=PAGE, transfer=True,
    prompt=("Write bm25_header(docs, query, w=2.0, k1=1.5, b=0.75, epsilon=0.25): BM25 of "
            "(header, body) chunks, the header's words counted w times in the term frequency "
            "and the length; idf over documents, each negative idf replaced by epsilon times the "
            "mean idf. ValueError for no docs or w < 0."),
    hint=("Three things use w: the term frequency w*f(header) + f(body), the length "
          "w*|header| + |body|, and so avgdl, the mean of those lengths. n(t) counts documents "
          "whose header or body holds t, once each; the floor is epsilon times the mean of every "
          "term's idf, negative ones included, as in section 3."),
    reference=bm25_header, atol=1e-9, rtol=1e-9,
    cases=lambda: [
        Case((_HDOCS, ["harp"]), note="a word in one body"),
        Case((_HDOCS, ["brandt"]), note="a word in two headers: w makes it count more"),
        Case((_HDOCS, ["brandt"]), {"w": 1.0}, note="w = 1: plain BM25 of header + body"),
        Case((_HDOCS, ["runa", "harp"]),
             note="'runa' is in 3 of 5 documents (in header and body of the first): the floor"),
        Case((_HDOCS, ["resident"]), {"epsilon": 0.5},
             note="'resident' heads every chunk: the floor with epsilon 0.5"),
        Case((_HDOCS, ["cat", "cat"]), {"w": 3.0}, note="a repeated query term counts twice"),
        Case((_HDOCS, ["ebba", "lane"]), {"w": 0.0, "k1": 1.2, "b": 0.5},
             note="w = 0: the header is ignored, other k1 and b"),
        Case((_HDOCS, ["unicorn"]), note="a term in no document"),
    ],
    bad_cases=lambda: [Case(([], ["cat"]), note="empty corpus"),
                       Case((_HDOCS, ["cat"]), {"w": -1.0}, note="negative w")],
    why=("Section 2's contextual chunks put a header (the resident's full name) in front of "
         "each chunk; BM25 then treats the header's words like any other. Weighting a field "
         "(the idea of BM25F) changes two quantities, and only these: the term frequency "
         "becomes $\\tilde f(t, d) = w\\,f(t, h_d) + f(t, b_d)$ and the length "
         "$|\\tilde d| = w\\,|h_d| + |b_d|$, so `avgdl` is the mean of the weighted lengths. "
         "The idf stays a property of documents: $n(t)$ counts a chunk once whether $t$ is in "
         "its header, its body or both (counting per field would make a word look common "
         "because it is repeated inside one chunk). The floor is the chapter's: each negative "
         "idf becomes $\\epsilon$ times the mean of all the idfs. Then the page's formula "
         "with $\\tilde f$ and $|\\tilde d|$. Two checks you can run: with $w = 1$ this is BM25 "
         "of header + body, and with a whole number $w$ it is BM25 of the chunk with its "
         "header written $w$ times, since both counts and the length are sums. A weight "
         "above 1 lets a name in the header outweigh the same name in a body sentence about "
         "someone else; because of saturation ($k_1$), it never outweighs it without bound."),
))


# ---------------------------------------------------------- 3. nDCG for graded relevance
def ndcg_graded(ranked: list, grades: dict, k: int) -> float:
    """nDCG@k with graded relevance: gain 2**grade - 1, discount log2(rank + 1), divided by
    the DCG of the best possible order of all graded items."""
    if isinstance(k, bool) or not isinstance(k, Integral) or k < 1:
        raise ValueError(f"ndcg_graded: k must be a positive int, got {k!r}")
    if not isinstance(grades, dict):
        raise TypeError("ndcg_graded: grades must be a dict id -> grade")
    if any(not isinstance(g, int | float) or isinstance(g, bool) or g < 0
           for g in grades.values()):
        raise ValueError("ndcg_graded: grades must be numbers >= 0")
    dcg = sum((2 ** grades.get(item, 0) - 1) / math.log2(r + 1)
              for r, item in enumerate(ranked[:k], start=1))
    best = sorted(grades.values(), reverse=True)[:k]
    ideal = sum((2 ** g - 1) / math.log2(r + 1) for r, g in enumerate(best, start=1))
    if ideal == 0:
        raise ValueError("ndcg_graded: no item has a grade above 0, nDCG is undefined")
    return dcg / ideal


register(Exercise(
    id="ch7.ndcg_graded", title="nDCG when relevance is graded", kind="function",
    section=PAGE, transfer=True,
    prompt=("Write ndcg_graded(ranked, grades, k): DCG@k with gain 2**grade - 1 and discount "
            "log2(rank + 1), divided by the DCG@k of the best order of all graded items. "
            "ValueError for k < 1 or no grade above 0."),
    hint=("The ideal order sorts every grade in `grades`, not only the graded items that the "
          "ranking happened to return; an item missing from `grades` has grade 0 (gain 0). Ranks "
          "start at 1, so the first item is divided by log2(2) = 1."),
    reference=ndcg_graded,
    cases=lambda: [
        Case((["a", "b", "c"], {"a": 3, "b": 2, "c": 1}, 3), note="already the best order: 1"),
        Case((["c", "b", "a"], {"a": 3, "b": 2, "c": 1}, 3), note="the worst order"),
        Case((["x", "a", "y"], {"a": 2, "b": 3}, 3),
             note="the best item 'b' was never retrieved: the ideal still counts it"),
        Case((["a", "b", "c", "d"], {"b": 1, "d": 1}, 4),
             note="grades 0/1: the binary nDCG of section 4"),
        Case((["a", "b", "c", "d"], {"a": 1, "c": 3, "d": 2}, 2), note="k = 2"),
        Case(([3, 1, 2], {1: 0.5, 2: 2}, 5), note="k longer than the ranking, fractional grade"),
    ],
    bad_cases=lambda: [Case((["a"], {"a": 1}, 0), note="k = 0"),
                       Case((["a"], {"a": 0}, 3), note="nothing relevant")],
    why=("Section 4's nDCG knows only relevant or not. With grades (3 = answers the question, "
         "1 = on the topic) the gain $2^{g} - 1$ makes a grade-3 passage worth 7 grade-1 ones: "
         "$\\mathrm{DCG@}k = \\sum_{r=1}^{k} \\frac{2^{g(r)} - 1}{\\log_2(r + 1)}$, where "
         "$g(r)$ is the grade of the item at rank $r$ (0 when ungraded). The normalizer is "
         "the DCG of the best possible ranking, the grades sorted high to low and cut at $k$, "
         "taken over *all* graded items: a retriever that never found the best passage "
         "must not be graded against "
         "what it happened to return. With grades 0 and 1 the gain is 1 or 0 and this is the "
         "binary nDCG the page computed."),
))


# --------------------------------------------------------- 4. an interval for a recall
def recall_interval(hits: list[int]) -> tuple[float, float]:
    """The 95% Wilson score interval of the share of hits (0/1 per question)."""
    if isinstance(hits, str) or not isinstance(hits, list | tuple):
        raise TypeError("recall_interval: hits must be a list of 0/1")
    if not hits:
        raise ValueError("recall_interval: hits is empty")
    if any(h not in (0, 1) for h in hits):
        raise ValueError("recall_interval: every hit must be 0 or 1")
    n, p = len(hits), sum(hits) / len(hits)
    z = NormalDist().inv_cdf(0.975)
    shrink = 1 / (1 + z * z / n)
    centre = shrink * (p + z * z / (2 * n))
    half = shrink * z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


register(Exercise(
    id="ch7.recall_interval", title="How sure is a measured recall?", kind="function",
    section=PAGE, transfer=True, atol=1e-9, rtol=1e-9,
    prompt=("Write recall_interval(hits) -> (low, high): the 95% Wilson score interval of the "
            "share of 1s in hits (one 0/1 per question). ValueError for no hits or a value other "
            "than 0 and 1."),
    hint=("Use z = NormalDist().inv_cdf(0.975) (1.95996...), not the Wald interval "
          "p ± z·sqrt(p(1-p)/n): the Wilson centre moves toward 1/2 and the half-width has an "
          "extra z²/(4n²) term, so the interval is not zero-wide at 0/n or n/n."),
    reference=recall_interval,
    cases=lambda: [
        Case(([1, 1, 0, 1, 1, 1, 0, 1, 1, 1, 1, 1],), note="10 of 12: a typical held-out set"),
        Case(([1] * 15,), note="15 of 15: the interval is not [1, 1]"),
        Case(([0, 0, 0, 0],), note="0 of 4"),
        Case(([1, 0],), note="n = 2"),
        Case(([1] * 180 + [0] * 20,), note="180 of 200"),
        Case(([random.Random(3).randint(0, 1) for _ in range(37)],), note="37 random hits"),
    ],
    bad_cases=lambda: [Case(([],), note="no questions"), Case(([1, 2],), note="a 2 in hits")],
    why=("A recall measured on $n$ questions is a share $\\hat p$ of $n$ trials, and another set "
         "of questions would give another share. The Wilson interval is the set of true rates "
         "$p$ that a score test at 95% would not reject: with $z = 1.96$, centre "
         "$\\frac{\\hat p + z^2/(2n)}{1 + z^2/n}$ and half-width "
         "$\\frac{z}{1 + z^2/n}\\sqrt{\\frac{\\hat p(1-\\hat p)}{n} + \\frac{z^2}{4n^2}}$. "
         "Unlike the textbook $\\hat p \\pm z\\sqrt{\\hat p(1-\\hat p)/n}$ it stays inside "
         "[0, 1] and does not shrink to a point at 15 of 15: a perfect score on 15 questions "
         "still allows a true recall near 0.8. That is why the page reads a dozen held-out "
         "questions with intervals, not as a ranking. `course_lib.evaluate.wilson_interval` "
         "is the same formula."),
))


# ------------------------------------------------------------------ 5. MaxSim's matches
def maxsim_matches(query_vecs: torch.Tensor, doc_vecs: torch.Tensor) -> tuple[float, list[int]]:
    """MaxSim of two sets of token vectors by cosine similarity, and for each query token the
    index of its best-matching document token (the first, on a tie)."""
    if not isinstance(query_vecs, torch.Tensor) or not isinstance(doc_vecs, torch.Tensor):
        raise TypeError("maxsim_matches: query_vecs and doc_vecs must be torch tensors")
    if query_vecs.ndim != 2 or doc_vecs.ndim != 2 or query_vecs.shape[1] != doc_vecs.shape[1] \
            or 0 in query_vecs.shape + doc_vecs.shape:
        raise ValueError(f"maxsim_matches: need (m, d) and (n, d), got "
                         f"{tuple(query_vecs.shape)} and {tuple(doc_vecs.shape)}")
    q = query_vecs / query_vecs.norm(dim=1, keepdim=True)
    d = doc_vecs / doc_vecs.norm(dim=1, keepdim=True)
    sims = q @ d.T                                      # (m, n) cosine similarities
    best, where = sims.max(dim=1)
    return float(best.sum()), where.tolist()


def _maxsim_cases():
    g = torch.Generator().manual_seed(0)
    cases = [
        Case((torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([[2.0, 0.0], [1.0, 1.0]])),
             note="vectors not unit length: cosine, not dot product"),
        Case((torch.tensor([[1.0, 0.0, 0.0]]), torch.tensor([[0.0, 1.0, 0.0], [0.6, 0.8, 0.0]])),
             note="one query token"),
        Case((torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, 0.0]]),
              torch.tensor([[3.0, 1.0]])), note="one document token: every query token picks it"),
    ]
    for m, n, dim in ((4, 7, 8), (6, 3, 16), (5, 12, 32)):
        cases.append(Case((torch.randn(m, dim, generator=g), torch.randn(n, dim, generator=g)),
                          note=f"random: {m} query tokens, {n} document tokens"))
    return cases


register(Exercise(
    id="ch7.maxsim_matches", title="MaxSim and its matches", kind="function",
    section=PAGE,
    prompt=("Write maxsim_matches(query_vecs, doc_vecs) -> (score, best): query_vecs (m, d) "
            "and doc_vecs (n, d) token vectors, not necessarily unit length; score is the sum "
            "over query tokens of the best cosine similarity with a document token (a float), "
            "best the index of that document token for each query token (a list of m ints). "
            "ValueError for mismatched shapes."),
    hint=("Normalize each row to length 1 first, then one (m, n) matrix of similarities: take "
          "the max along the document axis (one per query token), and sum those m maxima."),
    reference=maxsim_matches, atol=1e-5, rtol=1e-5,
    cases=_maxsim_cases,
    bad_cases=lambda: [Case((torch.ones(2, 3), torch.ones(4, 2)), note="dims 3 and 2"),
                       Case((torch.ones(3), torch.ones(4, 3)), note="a 1-D query")],
    why=("Late interaction compares every query token with every document token: after each "
         "row is scaled to length 1, `q @ d.T` is the (m, n) matrix of cosines (the heatmap of "
         "section 5). Each query token keeps only its best match, the max along a row (dim 1), "
         "and its position is the match the heatmap boxes; the score sums the m row maxima. The "
         "max is per *query* token, so every question word must find a partner, while a chunk "
         "may hold many words the question never asks about; taking the max down the columns "
         "instead would reward long chunks. MiniLM's token vectors are already unit length, "
         "so on them this equals `course_lib.rag.maxsim`."),
))
