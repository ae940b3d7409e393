"""Real English text shipped with the package: a snapshot of Python's own documentation.

Taught in book/06_inference.md. ``pydoc_topics.txt`` is the text of ``pydoc_data.topics`` (the
reference pages ``help("if")`` shows: about 0.5 MB of English about Python), taken from
Python 3.11.7 and stored here so that training on it is the same on any Python version.
The Python Software Foundation's licence notice is in ``NOTICE`` beside it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

CORPORA_DIR = Path(__file__).parent
PYDOC_TOPICS = CORPORA_DIR / "pydoc_topics.txt"
VAL_FRACTION = 0.1  # the last 10% of the text (cut at a line break) is held out


def build_pydoc_snapshot(path: str | Path = PYDOC_TOPICS) -> int:
    """Write every ``pydoc_data.topics`` page, sorted by topic name, separated by a blank line;
    return the number of characters. Written atomically (temp file, then rename)."""
    import pydoc_data.topics as topics

    text = "\n\n".join(topics.topics[key].strip("\n") for key in sorted(topics.topics)) + "\n"
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".txt")
    with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    os.replace(tmp, path)
    return len(text)


def pydoc_text(split: str = "all") -> str:
    """The shipped snapshot: ``split`` is "train" (first 90%), "val" (last 10%) or "all"."""
    if split not in ("train", "val", "all"):
        raise ValueError(f"pydoc_text: split must be 'train', 'val' or 'all', got {split!r}")
    text = PYDOC_TOPICS.read_text(encoding="utf-8")
    if split == "all":
        return text
    cut = text.index("\n", int(len(text) * (1 - VAL_FRACTION))) + 1
    return text[:cut] if split == "train" else text[cut:]
