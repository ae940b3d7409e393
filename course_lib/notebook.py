"""Chapter plumbing: one table style, source display that names file:line, glue helpers.

Every chapter imports these instead of defining its own, so tables look the same in
JupyterLab and in the book, and a printed function always says where it lives.
Taught in: used by every chapter; see CONTRIBUTING.md, "How a chapter is written".
"""

from __future__ import annotations

import html
import inspect
import re
from pathlib import Path

__all__ = ["Table", "table", "source", "glue_value", "glue_figure", "setup"]


def _cell(value) -> str:
    """A table cell as HTML, with `code` and **bold** as in Markdown."""
    text = html.escape(str(value))
    text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", text)


class Table:
    """An HTML table that renders the same in Jupyter, in the book and as plain text.

    Jupyter and myst-nb call `_repr_html_`; `str()` and `print()` give aligned text, which
    is what tests and a terminal see.
    """

    def __init__(self, header, rows, caption: str | None = None):
        header = [str(h) for h in header]
        rows = [list(r) for r in rows]
        if not header:
            raise ValueError("table: header is empty")
        for i, row in enumerate(rows):
            if len(row) != len(header):
                raise ValueError(
                    f"table: row {i} has {len(row)} cells, the header has {len(header)}")
        self.header, self.rows, self.caption = header, rows, caption

    def _repr_html_(self) -> str:
        cap = f"<caption>{_cell(self.caption)}</caption>" if self.caption else ""
        head = "".join(f"<th>{_cell(h)}</th>" for h in self.header)
        body = "".join("<tr>" + "".join(f"<td>{_cell(c)}</td>" for c in row) + "</tr>"
                       for row in self.rows)
        return (f'<div class="course-table"><table class="table">{cap}<thead><tr>{head}'
                f"</tr></thead><tbody>{body}</tbody></table></div>")

    def __str__(self) -> str:
        cells = [self.header] + [[str(c) for c in row] for row in self.rows]
        widths = [max(len(r[j]) for r in cells) for j in range(len(self.header))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(([self.caption] if self.caption else []) + lines)

    __repr__ = __str__


def table(header, rows, caption: str | None = None) -> Table:
    """A table from a header and rows of cells; make it the last line of a cell to show it.

    >>> print(table(["a", "b"], [[1, 2]]))
    a  b
    -  -
    1  2
    """
    return Table(header, rows, caption)


def _repo_path(path: str) -> str:
    """A path relative to the repository (the folder holding course_lib), for display."""
    p = Path(path).resolve()
    root = Path(__file__).resolve().parent.parent
    try:
        return str(p.relative_to(root))
    except ValueError:
        return p.name


def source(obj, lines: tuple[int, int] | None = None) -> str:
    """The source of a function or class, headed by the file and line it lives at.

    `lines=(a, b)` keeps only lines a..b of the object (1-based, inclusive), for showing
    the few lines that are the lesson. Print the result in a cell.
    """
    obj = inspect.unwrap(obj)   # the course's function, not a decorator's wrapper around it
    try:
        src_lines, start = inspect.getsourcelines(obj)
        path = inspect.getsourcefile(obj)
    except (TypeError, OSError) as exc:
        raise TypeError(f"source: cannot find the source of {obj!r}") from exc
    if lines is not None:
        a, b = lines
        if not (1 <= a <= b <= len(src_lines)):
            raise ValueError(f"source: lines {lines} outside 1..{len(src_lines)}")
        src_lines, start = src_lines[a - 1:b], start + a - 1
    end = start + len(src_lines) - 1
    head = f"# {_repo_path(path)}:{start}-{end}"
    return head + "\n" + "".join(src_lines).rstrip("\n")


class GluedText:
    """Text whose plain-text display has no quotes, so `{glue}` shows 1.46, not '1.46'."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return self.text

    def _repr_pretty_(self, printer, cycle) -> None:
        printer.text(self.text)


def glue_value(name: str, value, fmt: str | None = None):
    """Glue a number or string into the prose, formatted once, here.

    Show it with `{glue}`name``: the text exactly as formatted here. Not `{glue:text}` without
    a format spec: myst-nb runs ``ast.literal_eval`` on the text, so "1,708" renders as the
    tuple "(1, 708)" and "+4.8" loses its sign (tests/test_book_markup.py forbids it).
    Returns the value so a cell can glue and assert in one line.
    """
    from myst_nb import glue

    text = format(value, fmt) if fmt else str(value)
    glue(name, GluedText(text), display=False)
    return value


def glue_figure(name: str, fig) -> None:
    """Glue a matplotlib figure (`{glue:figure}`) and close it so it is not shown twice."""
    import matplotlib.pyplot as plt
    from myst_nb import glue

    glue(name, fig, display=False)
    plt.close(fig)


def setup(threads: int = 1, seed: int = 0) -> None:
    """What every chapter does first: the house plot style, a seed, a thread count.

    One thread is the default because the course's models are tiny: two threads spend more
    time synchronising than computing, and the shipped checkpoints were trained on one. The
    environment variable ``COURSE_THREADS`` overrides it (``tools/portability.py`` runs every
    chapter on 1 and 2 threads; the chapters' asserts hold on both).
    """
    import logging
    import os
    import warnings

    import torch

    from course_lib.plots import use_style

    warnings.filterwarnings("ignore", message="IProgress not found")
    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)
    use_style()
    torch.manual_seed(seed)
    override = os.environ.get("COURSE_THREADS", "").strip()
    if override:
        if not override.isdigit() or int(override) < 1:
            raise ValueError(f"COURSE_THREADS must be a positive integer, got {override!r}")
        threads = int(override)
    torch.set_num_threads(threads)
