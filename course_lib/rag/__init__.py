"""Retrieval-augmented generation: chunking, BM25, dense index, fusion, rerank, metrics,
and the chapter's corpora. ``python -m course_lib.rag ask "..."`` asks this book.

Taught in book/07_rag_agents.md.
"""

from course_lib.rag.chunking import (
    Chunk,
    chunk_text,
    contextual_chunks,
    sentence_spans,
    word_spans,
)
from course_lib.rag.corpora import (
    BOOK_QUESTIONS,
    PYDOC_QUESTIONS,
    Passage,
    book_passages,
    plain_text,
    pydoc_passages,
)
from course_lib.rag.dense import (
    DenseIndex,
    embed,
    embed_with_tokens,
    maxsim,
    rerank,
    token_strings,
    token_vectors,
)
from course_lib.rag.metrics import mrr, ndcg_at_k, recall_at_k, reciprocal_rank_fusion
from course_lib.rag.pipeline import Retriever, looks_injected, read_answer, word_overlap
from course_lib.rag.sparse import BM25, tokenize
from course_lib.rag.store import BOOK_STORE, stored_embeddings, text_key, write_store

__all__ = [
    "Chunk", "chunk_text", "contextual_chunks", "sentence_spans", "word_spans", "BM25",
    "tokenize", "DenseIndex", "embed", "embed_with_tokens", "token_vectors", "maxsim",
    "reciprocal_rank_fusion", "recall_at_k", "mrr", "ndcg_at_k", "Retriever", "read_answer",
    "word_overlap", "looks_injected", "Passage", "pydoc_passages",
    "book_passages", "PYDOC_QUESTIONS", "BOOK_QUESTIONS", "BOOK_STORE", "stored_embeddings",
    "text_key", "write_store", "plain_text", "rerank", "token_strings",
]
