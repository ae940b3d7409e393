"""Stored MiniLM vectors, keyed by the sha256 of each text: embed a corpus once, reuse it.

An index is built once and queried many times; only texts that are new or edited since need
the encoder again. The course ships the vectors of this book's passages
(``course_lib/weights/book-minilm.safetensors``, written by ``python -m course_lib.rag
index``): embedding all of them takes about half a minute on one core, looking them up a few
milliseconds. Taught in book/07_rag_agents.md ("Evaluate").
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import numpy as np

from course_lib.files import atomic_write, atomic_write_text, sha256_file, sha256_text
from course_lib.rag.dense import _check_texts, embed

__all__ = ["BOOK_STORE", "text_key", "load_store", "stored_embeddings", "write_store",
           "user_cache_path"]

# course_lib/weights/ (course_lib.models.WEIGHTS_DIR), named here so importing rag loads no torch
BOOK_STORE = Path(__file__).resolve().parents[1] / "weights" / "book-minilm.safetensors"
DIM = 384
UNIT_ATOL = 1e-4   # a stored vector's length may differ from 1 by float32 rounding, no more


def user_cache_path() -> Path:
    """Where ``python -m course_lib.rag ask`` keeps the vectors of passages the shipped store
    lacks (edited since it was written): ``$XDG_CACHE_HOME/course_lib/``, else
    ``~/.cache/course_lib/``. Deleting the file only costs embedding them again."""
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "course_lib" / "book-minilm-edits.safetensors"


def text_key(text: str) -> bytes:
    """The 32-byte sha256 of the text (UTF-8): the same text, the same key."""
    if not isinstance(text, str):
        raise TypeError(f"text_key: text must be a str, got {type(text).__name__}")
    return sha256_text(text)


def load_store(path: str | Path = BOOK_STORE) -> dict[bytes, np.ndarray]:
    """key -> unit vector (384,) float32, from a file ``write_store`` made; {} if it is absent.
    A file whose keys or vectors have the wrong shape or dtype, or whose vectors are not
    finite and of unit length, is a ValueError."""
    from safetensors.numpy import load_file

    path = Path(path)
    if not path.exists():
        return {}
    tensors = load_file(str(path))
    keys, vectors = tensors.get("keys"), tensors.get("embeddings")
    if keys is None or vectors is None or keys.dtype != np.uint8 or keys.ndim != 2 \
            or keys.shape[1] != 32 or vectors.shape != (len(keys), DIM) \
            or vectors.dtype != np.float32:
        raise ValueError(f"load_store: {path} does not hold uint8 keys (n, 32) and float32 "
                         f"embeddings (n, {DIM})")
    if not np.isfinite(vectors).all():
        raise ValueError(f"load_store: {path} holds NaN or inf")
    norms = np.linalg.norm(vectors.astype(np.float64), axis=1)
    if len(norms) and np.abs(norms - 1.0).max() > UNIT_ATOL:
        raise ValueError(f"load_store: {path} holds vectors that are not of unit length "
                         f"(lengths {norms.min():.6g} to {norms.max():.6g})")
    return {k.tobytes(): v for k, v in zip(keys, vectors)}


def _save_vectors(path: Path, keys: list[bytes], vectors: np.ndarray) -> None:
    """keys (n of 32 bytes) and float32 vectors (n, 384) as safetensors, written atomically
    and readable by all (a store is package data, a cache the user's own file)."""
    from safetensors.numpy import save_file

    arr = np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(len(keys), 32).copy()
    tensors = {"keys": arr, "embeddings": np.ascontiguousarray(vectors, dtype=np.float32)}
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp)), mode=0o644)


def _load_cache(path: Path) -> dict[bytes, np.ndarray]:
    """A cache file's vectors, verified as ``load_store`` verifies a store; a cache that fails
    the check, or is no safetensors file at all (a hand edit, a full disk), is ignored: it is
    only a cache, rewritten after the texts are embedded again."""
    from safetensors import SafetensorError

    try:
        return load_store(path)
    except (ValueError, OSError, SafetensorError):
        return {}


def stored_embeddings(texts: list[str], path: str | Path = BOOK_STORE, batch_size: int = 8,
                      cache: str | Path | None = None) -> tuple[np.ndarray, int]:
    """``embed(texts)``, with each text's vector taken from the store where that very text
    was embedded before; only the others run through MiniLM. Returns the embeddings
    (n, 384) and how many texts were embedded now.

    With ``cache`` (a file path, e.g. ``user_cache_path()``), the vectors of texts the store
    lacks are also looked up there, and the cache is rewritten (atomically) to hold exactly
    those texts' vectors, so a second call with the same texts embeds nothing."""
    texts = _check_texts(texts, "stored_embeddings")
    store = load_store(path)
    out = np.zeros((len(texts), DIM), dtype=np.float32)
    keys = [text_key(t) for t in texts]
    extra = {} if cache is None else _load_cache(Path(cache))
    missing, outside = [], {}
    for i, key in enumerate(keys):
        vector = store.get(key)
        if vector is None:
            vector = extra.get(key)
            if vector is None:
                missing.append(i)
            outside[key] = i
        if vector is not None:
            out[i] = vector
    if missing:
        out[missing] = embed([texts[i] for i in missing], batch_size)
    if cache is not None and (missing or outside.keys() != extra.keys()):
        cache = Path(cache)
        cache.parent.mkdir(parents=True, exist_ok=True)
        _save_vectors(cache, list(outside), out[list(outside.values())].reshape(-1, DIM))
    return out, len(missing)


def write_store(texts: list[str], path: str | Path = BOOK_STORE, how_made: str = "") -> dict:
    """Embed every distinct text and write the vectors with their keys (safetensors, written
    atomically), and a JSON record beside it (sha256, count, machine, how it was made).
    Returns the record."""
    from course_lib.checkpoint import this_machine

    texts = _check_texts(texts, "write_store")
    unique = list(dict.fromkeys(texts))
    if not unique:
        raise ValueError("write_store: texts is empty")
    path = Path(path)
    _save_vectors(path, [text_key(t) for t in unique], embed(unique))
    record = {"name": path.stem, "what": "all-MiniLM-L6-v2 sentence embeddings (course_lib."
              "minilm), unit length, keyed by the sha256 of each text",
              "how_made": how_made or "course_lib.rag.store.write_store",
              "n_texts": len(unique), "dim": DIM, "sha256": sha256_file(path),
              "date_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
              **this_machine()}
    atomic_write_text(path.with_suffix(".json"), json.dumps(record, indent=1) + "\n",
                      mode=0o644)
    return record
