"""Diagram of chapter 7: a flow of boxes (a RAG pipeline, an agent loop)."""

from __future__ import annotations

from collections.abc import Sequence

from course_lib.plots.base import PALETTE

__all__ = ['flow_diagram']

def flow_diagram(ax, boxes: Sequence[str], title: str | None = None, loop_back: bool = False,
                 loop_to: int = 0):
    """Boxes left to right joined by arrows (a pipeline); ``loop_back`` draws an arrow from the
    last box back to box ``loop_to`` (a loop, as in an agent). Taught in book/07_rag_agents.md."""
    boxes = [str(b) for b in boxes]
    if len(boxes) < 2:
        raise ValueError(f"flow_diagram: need at least 2 boxes, got {len(boxes)}")
    colours = list(PALETTE.values())[:-1]
    ax.set_xlim(-0.6, len(boxes) - 0.4)
    ax.set_ylim(-0.35 - 0.3 * len(boxes) if loop_back else -1.0, 0.8)  # room for the arc
    ax.axis("off")
    for i, label in enumerate(boxes):
        ax.text(i, 0, label, ha="center", va="center", fontsize=9, wrap=True,
                bbox={"boxstyle": "round,pad=0.45", "fc": colours[i % len(colours)],
                      "alpha": 0.25, "ec": colours[i % len(colours)]})
        if i:
            ax.annotate("", xy=(i - 0.42, 0), xytext=(i - 0.58, 0),
                        arrowprops={"arrowstyle": "->", "lw": 1.5})
    if loop_back:
        if not 0 <= loop_to < len(boxes) - 1:
            raise ValueError(f"flow_diagram: loop_to must be in [0, {len(boxes) - 2}]")
        ax.annotate("", xy=(loop_to, -0.35), xytext=(len(boxes) - 1, -0.35),
                    arrowprops={"arrowstyle": "->", "lw": 1.2, "ls": "--",
                                "connectionstyle": "arc3,rad=-0.25"}, annotation_clip=False)
    if title:
        ax.set_title(title)
    return ax
