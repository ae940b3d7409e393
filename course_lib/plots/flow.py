"""Diagram of chapter 7: a flow of boxes (a RAG pipeline, an agent loop)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from course_lib.plots.base import PALETTE

__all__ = ['flow_diagram']


def flow_diagram(ax, boxes: Sequence[str], title: str | None = None, loop_back: bool = False,
                 loop_to: int = 0, rows: int = 1, fontsize: float = 9):
    """Boxes left to right joined by arrows (a pipeline); ``loop_back`` draws an arrow from the
    last box back to box ``loop_to`` (a loop, as in an agent). ``rows`` > 1 wraps the boxes
    onto that many rows (the last box of a row leads down to the first of the next), so each
    box can be wider and its label larger (``fontsize``). Taught in book/07_rag_agents.md."""
    boxes = [str(b) for b in boxes]
    if len(boxes) < 2:
        raise ValueError(f"flow_diagram: need at least 2 boxes, got {len(boxes)}")
    if isinstance(rows, bool) or not isinstance(rows, int) or not 1 <= rows <= len(boxes):
        raise ValueError(f"flow_diagram: rows must be an int in [1, {len(boxes)}], got {rows!r}")
    if loop_back and rows != 1:
        raise ValueError("flow_diagram: loop_back needs rows=1")
    colours = list(PALETTE.values())[:-1]
    per_row = math.ceil(len(boxes) / rows)
    gap = 1.4                                     # vertical distance between rows

    def where(i):
        return i % per_row, -(i // per_row) * gap

    ax.set_xlim(-0.6, per_row - 0.4)
    if rows == 1:
        ax.set_ylim(-0.35 - 0.3 * len(boxes) if loop_back else -1.0, 0.8)  # room for the arc
    else:
        ax.set_ylim(-(rows - 1) * gap - 0.6, 0.6)
    ax.axis("off")
    for i, label in enumerate(boxes):
        x, y = where(i)
        ax.text(x, y, label, ha="center", va="center", fontsize=fontsize, wrap=True,
                bbox={"boxstyle": "round,pad=0.45", "fc": colours[i % len(colours)],
                      "alpha": 0.25, "ec": colours[i % len(colours)]})
        if not i:
            continue
        px, py = where(i - 1)
        if py == y:
            ax.annotate("", xy=(x - 0.42, y), xytext=(x - 0.58, y),
                        arrowprops={"arrowstyle": "->", "lw": 1.5})
        else:                                     # down from the row's last box to the next row
            ax.annotate("", xy=(x, y + 0.32), xytext=(px, py - 0.32),
                        arrowprops={"arrowstyle": "->", "lw": 1.5,
                                    "connectionstyle": "angle,angleA=90,angleB=0,rad=8"})
    if loop_back:
        if not 0 <= loop_to < len(boxes) - 1:
            raise ValueError(f"flow_diagram: loop_to must be in [0, {len(boxes) - 2}]")
        ax.annotate("", xy=(loop_to, -0.35), xytext=(len(boxes) - 1, -0.35),
                    arrowprops={"arrowstyle": "->", "lw": 1.2, "ls": "--",
                                "connectionstyle": "arc3,rad=-0.25"}, annotation_clip=False)
    if title:
        ax.set_title(title)
    return ax
