"""Stored MiniLM vectors, keyed by the sha256 of each text: embed a corpus once, reuse it.

An index is built once and queried many times; only texts that are new or edited since need
the encoder again. The course ships the vectors of this book's passages
(``course_lib/weights/book-minilm.safetensors``, written by ``python -m course_lib.rag
index``): embedding all of them takes about half a minute on one core, looking them up a few
milliseconds. Taught in book/07_rag_agents.md ("Evaluate").
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from course_lib.rag.dense import _check_texts, embed

__all__ = ["BOOK_STORE", "text_key", "load_store", "stored_embeddings", "write_store"]

# course_lib/weights/ (course_lib.models.WEIGHTS_DIR), named here so importing rag loads no torch
BOOK_STORE = Path(__file__).resolve().parents[1] / "weights" / "book-minilm.safetensors"
DIM = 384


def text_key(text: str) -> bytes:
    """The 32-byte sha256 of the text (UTF-8): the same text, the same key."""
    if not isinstance(text, str):
        raise TypeError(f"text_key: text must be a str, got {type(text).__name__}")
    return hashlib.sha256(text.encode("utf-8")).digest()


def load_store(path: str | Path = BOOK_STORE) -> dict[bytes, np.ndarray]:
    """key -> unit vector (384,) float32, from a file ``write_store`` made; {} if it is absent."""
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
    return {k.tobytes(): v for k, v in zip(keys, vectors)}


def stored_embeddings(texts: list[str], path: str | Path = BOOK_STORE, batch_size: int = 8
                      ) -> tuple[np.ndarray, int]:
    """``embed(texts)``, with each text's vector taken from the store where that very text
    was embedded before; only the others run through MiniLM. Returns the embeddings
    (n, 384) and how many texts were embedded now."""
    texts = _check_texts(texts, "stored_embeddings")
    store = load_store(path)
    out = np.zeros((len(texts), DIM), dtype=np.float32)
    missing = []
    for i, text in enumerate(texts):
        vector = store.get(text_key(text))
        if vector is None:
            missing.append(i)
        else:
            out[i] = vector
    if missing:
        out[missing] = embed([texts[i] for i in missing], batch_size)
    return out, len(missing)


def write_store(texts: list[str], path: str | Path = BOOK_STORE, how_made: str = "") -> dict:
    """Embed every distinct text and write the vectors with their keys (safetensors, written
    atomically), and a JSON record beside it (sha256, count, machine, how it was made).
    Returns the record."""
    from safetensors.numpy import save_file

    from course_lib.checkpoint import sha256_file, this_machine

    texts = _check_texts(texts, "write_store")
    unique = list(dict.fromkeys(texts))
    if not unique:
        raise ValueError("write_store: texts is empty")
    path = Path(path)
    vectors = embed(unique)
    keys = np.frombuffer(b"".join(text_key(t) for t in unique), dtype=np.uint8)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".safetensors")
    os.close(fd)
    try:
        save_file({"keys": keys.reshape(len(unique), 32).copy(), "embeddings": vectors}, tmp)
        os.chmod(tmp, 0o644)            # mkstemp makes it private; the store is package data
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    record = {"name": path.stem, "what": "all-MiniLM-L6-v2 sentence embeddings (course_lib."
              "minilm), unit length, keyed by the sha256 of each text",
              "how_made": how_made or "course_lib.rag.store.write_store",
              "n_texts": len(unique), "dim": DIM, "sha256": sha256_file(path),
              "date_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
              **this_machine()}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(json.dumps(record, indent=1) + "\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, path.with_suffix(".json"))
    return record
