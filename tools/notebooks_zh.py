"""The Chinese notebooks: zh/book/<page>.md from book/<page>.md and the page's catalog.

    python tools/translation.py notebooks          # (re)write zh/book/*.md  (make notebooks-zh)
    python tools/translation.py notebooks --check  # exit 1 if zh/book/ is not current

A Chinese learner runs the chapters in JupyterLab or on Binder from `zh/book/`, which sits at
the same depth as `book/` so every relative path a cell uses still works. Each Chinese notebook
is the English one with its Markdown translated: every catalog message is put back where the
English came from (the line the catalog records, then the first place at or after it where the
English text stands as a whole block: a paragraph, heading, list item, table cell, admonition
title or formula). Code cells are never touched: the file is edited only outside code-cell
fences, so the code is byte-identical to the English (tests/test_translation.py checks it, cell
by cell, with jupytext). The folder is committed so that Binder can open it; the test also
fails when it is not what this script writes from the current book and catalogs.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass

from translation import BOOK, LOCALE, ZH_BOOK

from course_lib.files import atomic_write_bytes

HEADER = ("<!-- 本文件由 tools/notebooks_zh.py 从 book/{page}.md 和 "
          "locale/zh_CN/LC_MESSAGES/book/{page}.po 生成（make notebooks-zh），请勿手工修改。 -->\n")
_FENCE_OPEN = re.compile(r"^(`{3,})\{code-cell\}")
# What may stand before a message on its line: indentation, a heading's #, a list marker, a
# quote, a table's pipe, a directive's opening (its argument is the title).
_BLOCK_PREFIX = re.compile(r"(?:^|\|)[ \t]*"
                           r"(?:#{1,6}[ \t]+|[-*+][ \t]+|\d+[.)][ \t]+|>[ \t]*|\$\$[ \t]*)?$"
                           r"|^[ \t]*(?:`{3,}|:{3,})\{[^}]+\}[ \t]*$")
_BLOCK_SUFFIX = re.compile(r"^[ \t]*(?:$|\||\$\$[ \t]*$|\{#[^}]*\}[ \t]*$)")


@dataclass
class Unplaced:
    page: str
    line: int
    msgid: str


def markdown_mask(text: str) -> list[bool]:
    """For each line: True when it is Markdown a translation may change (not the front
    matter, not inside a code cell)."""
    lines = text.split("\n")
    mask = [True] * len(lines)
    i = 0
    if lines and lines[0] == "---":           # jupytext front matter
        mask[0] = False
        i = 1
        while i < len(lines) and lines[i] != "---":
            mask[i] = False
            i += 1
        if i < len(lines):
            mask[i] = False
        i += 1
    fence = None
    while i < len(lines):
        line = lines[i]
        if fence is None:
            m = _FENCE_OPEN.match(line)
            if m:
                fence = m.group(1)
                mask[i] = False
        else:
            mask[i] = False
            if line.strip() == fence:
                fence = None
        i += 1
    return mask


def _normalised(text: str, start: int, end: int) -> tuple[str, list[int]]:
    """`text[start:end]` with every run of whitespace made one space, and for each character of
    the result its offset in `text`."""
    out, where = [], []
    i = start
    while i < end:
        if text[i].isspace():
            j = i
            while j < end and text[j].isspace():
                j += 1
            out.append(" ")
            where.append(i)
            i = j
        else:
            out.append(text[i])
            where.append(i)
            i += 1
    return "".join(out), where


def _find_block(text: str, line_starts: list[int], mask: list[bool], line: int,
                msgid: str, taken: list[tuple[int, int]]) -> tuple[int, int] | None:
    """Where in `text` the message stands as a whole block, at or after `line` (1-based)."""
    want = " ".join(msgid.split())
    if not want:
        return None
    first = max(0, min(line - 1, len(line_starts) - 1))
    # A message starts within a few hundred lines of the line Sphinx recorded for it (the
    # cells of a table inside an admonition are all recorded at the admonition's first line).
    last = min(len(line_starts), first + 400)
    start = line_starts[first]
    end = line_starts[last] if last < len(line_starts) else len(text)
    norm, where = _normalised(text, start, end)
    pos = norm.find(want)
    while pos != -1:
        a = where[pos]
        b = where[pos + len(want) - 1] + 1
        line_a = text.count("\n", 0, a)
        line_b = text.count("\n", 0, b)
        before = text[text.rfind("\n", 0, a) + 1:a]
        after_end = text.find("\n", b)
        after = text[b:after_end if after_end != -1 else len(text)]
        if (all(mask[k] for k in range(line_a, line_b + 1))
                and _BLOCK_PREFIX.search(before) and _BLOCK_SUFFIX.match(after)
                and not any(a < t_end and t_start < b for t_start, t_end in taken)):
            return a, b
        pos = norm.find(want, pos + 1)
    return None


def translate_text(page: str, text: str, entries) -> tuple[str, list[Unplaced]]:
    """The page's MyST source with every translated message put in place of its English."""
    mask = markdown_mask(text)
    line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
    edits: list[tuple[int, int, str]] = []
    unplaced: list[Unplaced] = []
    for entry in entries:
        if entry.obsolete or not entry.msgstr or "fuzzy" in entry.flags:
            continue
        lines = sorted({int(ln) for _, ln in entry.occurrences if ln and str(ln).isdigit()})
        for line in lines or [1]:
            span = _find_block(text, line_starts, mask, line, entry.msgid,
                               [(a, b) for a, b, _ in edits])
            if span is None:
                unplaced.append(Unplaced(page, line, entry.msgid))
                continue
            new = entry.msgstr if entry.msgstr != entry.msgid else text[span[0]:span[1]]
            edits.append((span[0], span[1], new))
            # The catalog keeps one entry for a cell repeated in the same table: translate the
            # other copies too.
            row = text.count("\n", 0, span[0])
            if text[line_starts[row]:span[0]].lstrip().startswith("|"):
                nxt = row + 1
                while nxt < len(line_starts) and \
                        text[line_starts[nxt]:].lstrip().startswith("|"):
                    again = _find_block(text, line_starts, mask, nxt + 1, entry.msgid,
                                        [(a, b) for a, b, _ in edits])
                    if again is None or text.count("\n", 0, again[0]) > nxt:
                        nxt += 1
                        continue
                    edits.append((again[0], again[1], new))
    for a, b, new in sorted(edits, reverse=True):
        text = text[:a] + new + text[b:]
    return text, unplaced


def build_page(page: str) -> tuple[str, list[Unplaced]]:
    import polib

    source = (BOOK / f"{page}.md").read_text(encoding="utf-8")
    catalog = LOCALE / f"{page}.po"
    if not catalog.exists():
        raise FileNotFoundError(f"no catalog for {page}: {catalog}")
    text, unplaced = translate_text(page, source, polib.pofile(str(catalog)))
    # The notice goes after the front matter, so jupytext still reads the header.
    if text.startswith("---\n"):
        end = text.index("\n---\n", 4) + 5
        text = text[:end] + "\n" + HEADER.format(page=page) + text[end:]
    else:
        text = HEADER.format(page=page) + text
    return text, unplaced


def pages() -> list[str]:
    """The notebook pages: every book/*.md with code cells (the chapters)."""
    return sorted(p.stem for p in BOOK.glob("*.md")
                  if "```{code-cell}" in p.read_text(encoding="utf-8"))


def write_all(check_only: bool = False) -> int:
    stale, problems = [], []
    for page in pages():
        text, unplaced = build_page(page)
        problems += unplaced
        target = ZH_BOOK / f"{page}.md"
        current = target.read_text(encoding="utf-8") if target.exists() else None
        if current != text:
            stale.append(page)
            if not check_only:
                target.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_bytes(target, text.encode("utf-8"))   # LF on every OS
    for u in problems:
        print(f"{u.page}:{u.line} not placed: {u.msgid[:80]!r}", file=sys.stderr)
    if check_only:
        for page in stale:
            print(f"zh/book/{page}.md is not current: run `make notebooks-zh`", file=sys.stderr)
        return 1 if stale or problems else 0
    print(f"zh/book: {len(pages())} notebooks, {len(stale)} rewritten, "
          f"{len(problems)} message(s) not placed")
    return 1 if problems else 0
