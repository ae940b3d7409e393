"""Plain file I/O the rest of the package shares: hashes and atomic writes.

A leaf module: it imports nothing of ``course_lib``, so checkpoints, tokenizers, the rag
store and any cache can use it without importing one another.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

__all__ = ["atomic_write", "atomic_write_bytes", "atomic_write_text", "sha256_file",
           "sha256_text"]


def atomic_write(path: str | Path, write: Callable[[Path], None], mode: int | None = None
                 ) -> Path:
    """Call ``write(tmp)`` on a temporary file in ``path``'s folder, flush it to disk, then
    rename it over ``path`` (``os.replace`` is atomic). If ``write`` fails or the process dies
    midway, ``path`` keeps its old content; the temporary file is removed on an exception.
    ``mode`` (e.g. ``0o644``) sets the file's permissions before the rename."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str, mode: int | None = None) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; see ``atomic_write``."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"), mode)


def atomic_write_bytes(path: str | Path, data: bytes, mode: int | None = None) -> Path:
    """Write ``data`` to ``path`` atomically; see ``atomic_write``."""
    return atomic_write(path, lambda tmp: tmp.write_bytes(data), mode)


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_text(text: str) -> bytes:
    """The 32-byte sha256 digest of ``text`` encoded as UTF-8."""
    return hashlib.sha256(text.encode("utf-8")).digest()
