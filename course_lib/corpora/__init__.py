"""Real English text shipped with the package: a snapshot of Python's own documentation.

Taught in book/06_inference.md. ``pydoc_topics.txt`` is the text of ``pydoc_data.topics`` (the
reference pages ``help("if")`` shows: about 0.5 MB of English about Python), taken from
Python 3.11.7 and stored here so that training on it is the same on any Python version.
The Python Software Foundation's licence notice is in ``NOTICE`` beside it.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

CORPORA_DIR = Path(__file__).parent
PYDOC_TOPICS = CORPORA_DIR / "pydoc_topics.txt"
# Which topic each page of the snapshot is: [name, first character, end] in text order.
PYDOC_INDEX = CORPORA_DIR / "pydoc_topics.index.json"
VAL_FRACTION = 0.1  # the last 10% of the text (cut at a line break) is held out


def build_pydoc_snapshot(path: str | Path = PYDOC_TOPICS) -> int:
    """Write every ``pydoc_data.topics`` page, sorted by topic name, separated by a blank line;
    return the number of characters. Written atomically (temp file, then rename)."""
    import pydoc_data.topics as topics

    pages = [(key, topics.topics[key].strip("\n")) for key in sorted(topics.topics)]
    text = "\n\n".join(page for _, page in pages) + "\n"
    index, start = [], 0
    for key, page in pages:
        index.append([key, start, start + len(page)])
        start += len(page) + 2
    path = Path(path)
    _write_atomic(path, text)
    _write_atomic(path.with_suffix(".index.json"), json.dumps(index, indent=0) + "\n")
    return len(text)


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    os.replace(tmp, path)


def pydoc_topics() -> dict[str, str]:
    """The snapshot's pages by topic name (``"try"``, ``"if"``, ...), as ``help("try")`` shows
    them on Python 3.11.7, on any Python: what chapter 7 retrieves from. The index is checked
    against the text before any page is cut from it."""
    text = PYDOC_TOPICS.read_text(encoding="utf-8")
    index = json.loads(PYDOC_INDEX.read_text(encoding="utf-8"))
    pages, end = {}, 0
    for entry in index:
        ok = (isinstance(entry, list) and len(entry) == 3 and isinstance(entry[0], str)
              and all(isinstance(x, int) and not isinstance(x, bool) for x in entry[1:])
              and entry[1] in (0, end + 2) and entry[1] < entry[2] <= len(text)
              and entry[0] not in pages)
        if not ok:
            raise ValueError(f"pydoc_topics: {PYDOC_INDEX.name} does not match the snapshot "
                             f"at {entry!r}; rebuild both with build_pydoc_snapshot()")
        pages[entry[0]] = text[entry[1]:entry[2]]
        end = entry[2]
    if end + 1 != len(text):
        raise ValueError(f"pydoc_topics: {PYDOC_INDEX.name} does not cover the snapshot; "
                         "rebuild both with build_pydoc_snapshot()")
    return pages


def pydoc_text(split: str = "all") -> str:
    """The shipped snapshot: ``split`` is "train" (first 90%), "val" (last 10%) or "all"."""
    if split not in ("train", "val", "all"):
        raise ValueError(f"pydoc_text: split must be 'train', 'val' or 'all', got {split!r}")
    text = PYDOC_TOPICS.read_text(encoding="utf-8")
    if split == "all":
        return text
    cut = text.index("\n", int(len(text) * (1 - VAL_FRACTION))) + 1
    return text[:cut] if split == "train" else text[cut:]
