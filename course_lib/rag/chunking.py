"""Cutting documents into chunks: by characters, tokens, sentences, or recursively by structure.

Taught in book/07_rag_agents.md, "Chunking".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Chunk", "chunk_text", "contextual_chunks", "word_spans", "sentence_spans"]

_WORD = re.compile(r"\w+|[^\w\s]")
_SENTENCE = re.compile(r"[^.!?\n]+(?:[.!?]+|$)|\n+", re.M)
# Recursive splitting tries the coarsest boundary first: sections, paragraphs, lines,
# sentences, words. A piece still too long is split again at the next boundary.
SEPARATORS = ("\n#", "\n\n", "\n", ". ", " ")


@dataclass(frozen=True)
class Chunk:
    """A piece of a document: its text and where it sits (``text == doc[start:end]``)."""

    text: str
    start: int
    end: int
    index: int
    doc: int = 0
    header: str = ""  # context prepended when indexing (see contextual_chunks), not in text

    def __post_init__(self):
        for name in ("text", "header"):
            _check_str("Chunk", getattr(self, name), name)
        for name in ("start", "end", "index", "doc"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool):
                raise TypeError(f"Chunk: {name} must be an int, got {v!r}")
            if v < 0:
                raise ValueError(f"Chunk: {name} must be >= 0, got {v}")
        if self.end - self.start != len(self.text):
            raise ValueError(f"Chunk: end - start = {self.end - self.start} must be len(text) "
                             f"= {len(self.text)}")


def word_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each word or punctuation token: the tokenizer of ``by="token"``."""
    _check_str("word_spans", text)
    return [m.span() for m in _WORD.finditer(text)]


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence, leading spaces removed; newlines are not sentences."""
    _check_str("sentence_spans", text)
    spans = []
    for m in _SENTENCE.finditer(text):
        a, b = m.span()
        while a < b and text[a].isspace():
            a += 1
        if a < b:
            spans.append((a, b))
    return spans


def _check_str(where, text, name="text"):
    if not isinstance(text, str):
        raise TypeError(f"{where}: {name} must be a str, got {type(text).__name__}")


def _check(text, size, overlap, doc, where="chunk_text"):
    _check_str(where, text)
    for name, v in (("size", size), ("overlap", overlap), ("doc", doc)):
        if not isinstance(v, int) or isinstance(v, bool):
            raise TypeError(f"{where}: {name} must be an int, got {v!r}")
    if size < 1:
        raise ValueError(f"{where}: size must be >= 1, got {size}")
    if not 0 <= overlap < size:
        raise ValueError(f"{where}: overlap must be in [0, size), got {overlap} (size {size})")
    if doc < 0:
        raise ValueError(f"{where}: doc must be >= 0, got {doc}")


def _windows(spans, size, overlap):
    """Windows of ``size`` units that advance by ``size - overlap``; the last one ends the text."""
    step, out = size - overlap, []
    for i in range(0, len(spans), step):
        out.append((spans[i][0], spans[min(i + size, len(spans)) - 1][1]))
        if i + size >= len(spans):
            break
    return out


def _recursive(text, a, b, size, seps):
    """Spans of text[a:b], each at most ``size`` chars, cut at the coarsest separator that works."""
    if b - a <= size:
        return [(a, b)] if text[a:b].strip() else []
    if not seps:  # no boundary left: cut by characters
        return [(i, min(i + size, b)) for i in range(a, b, size) if text[i:i + size].strip()]
    sep, rest = seps[0], seps[1:]
    cuts, i = [a], text.find(sep, a + 1, b)
    while i != -1:
        cuts.append(i + (len(sep) if sep in (". ", " ") else 0))  # keep "#" and newlines ahead
        i = text.find(sep, i + 1, b)
    cuts.append(b)
    pieces = [(x, y) for x, y in zip(cuts, cuts[1:]) if y > x]
    out, cur = [], None
    for x, y in pieces:  # merge neighbours greedily while they fit
        if cur and y - cur[0] <= size:
            cur = (cur[0], y)
            continue
        if cur:
            out.append(cur)
        cur = (x, y)
    if cur:
        out.append(cur)
    final = []
    for x, y in out:
        if y - x > size:
            final.extend(_recursive(text, x, y, size, rest))
        elif text[x:y].strip():  # a blank line between a heading and a paragraph is no chunk
            final.append((x, y))
    return final


def chunk_text(text: str, size: int, overlap: int = 0, by: str = "char", doc: int = 0
               ) -> list[Chunk]:
    """Cut ``text`` into chunks of ``size`` units (characters, tokens or sentences) where
    neighbours share ``overlap`` units; ``by="recursive"`` cuts at the coarsest structure
    (heading, paragraph, line, sentence, word) so that chunks stay under ``size`` characters,
    and takes no overlap. An empty text gives no chunks, and ``by="recursive"`` gives no chunk
    that is empty or whitespace only. Taught in book/07_rag_agents.md.
    """
    _check(text, size, overlap, doc)
    if by == "char":
        spans = [(i, i + 1) for i in range(len(text))]
    elif by == "token":
        spans = word_spans(text)
    elif by == "sentence":
        spans = sentence_spans(text)
    elif by == "recursive":
        if overlap:
            raise ValueError("chunk_text: overlap must be 0 when by='recursive'")
        windows = _recursive(text, 0, len(text), size, SEPARATORS)
        windows = [(a + len(text[a:b]) - len(text[a:b].lstrip()), b) for a, b in windows
                   if text[a:b].strip()]
        return [Chunk(text[a:b], a, b, i, doc) for i, (a, b) in enumerate(windows)]
    else:
        raise ValueError(f"chunk_text: by must be 'char', 'token', 'sentence' or 'recursive', "
                         f"got {by!r}")
    if by == "char":  # a direct formula; the per-character spans above would be slow
        step = size - overlap
        windows = []
        for s in range(0, len(text), step):
            windows.append((s, min(s + size, len(text))))
            if s + size >= len(text):
                break
    else:
        windows = _windows(spans, size, overlap)
    return [Chunk(text[a:b], a, b, i, doc) for i, (a, b) in enumerate(windows)]


def contextual_chunks(text: str, size: int, overlap: int = 0, doc: int = 0) -> list[Chunk]:
    """Sentence chunks that remember whose they are: each paragraph (a line) is split by
    sentences after its first one, and that first sentence, which names the subject, rides
    along as every chunk's ``header``. Index ``header + " " + text``; ``text`` stays a slice of
    the document. Taught in book/07_rag_agents.md, "Chunking"."""
    _check(text, size, overlap, doc, "contextual_chunks")
    out, pos = [], 0
    for line in text.split("\n"):
        start = text.index(line, pos)
        pos = start + len(line)
        spans = sentence_spans(line)
        if not spans:
            continue
        header = line[spans[0][0]:spans[0][1]] if len(spans) > 1 else ""
        body = start + (spans[1][0] if len(spans) > 1 else spans[0][0])
        for c in chunk_text(text[body:pos], size, overlap, by="sentence"):
            out.append(Chunk(c.text, body + c.start, body + c.end, len(out), doc, header))
    return out
