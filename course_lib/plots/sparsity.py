"""Diagram of chapter 6: GPTQ's lazy column blocks."""

from __future__ import annotations

from course_lib.plots.base import PALETTE

__all__ = ['lazy_blocks']

def lazy_blocks(ax, n_cols: int = 16, block: int = 4, current: int = 5, n_rows: int = 6):
    """The column order of GPTQ and SparseGPT on a (rows x n_cols) weight: columns already
    quantized or pruned, the current column, the rest of its block (updated after every
    column), and the later blocks (updated once, lazily, when the block is done)."""
    from matplotlib.patches import Patch, Rectangle

    if not 0 <= current < n_cols or block < 1:
        raise ValueError("lazy_blocks: need 0 <= current < n_cols and block >= 1")
    end = (current // block + 1) * block
    colors = {"done": PALETTE["sky"], "now": PALETTE["vermillion"],
              "block": PALETTE["orange"], "lazy": "#dddddd"}
    for j in range(n_cols):
        kind = ("done" if j < current else "now" if j == current
                else "block" if j < end else "lazy")
        ax.add_patch(Rectangle((j, 0), 1, n_rows, facecolor=colors[kind], edgecolor="white"))
    for b in range(0, n_cols + 1, block):
        ax.axvline(b, color="black", linewidth=1.5)
    ax.set_xlim(0, n_cols)
    ax.set_ylim(n_rows, 0)
    ax.set_xlabel("input column j of W (d_in)")
    ax.set_ylabel("output rows")
    ax.set_yticks([])
    ax.grid(False)
    ax.legend(handles=[Patch(color=colors["done"], label="done (fixed)"),
                       Patch(color=colors["now"], label="current column"),
                       Patch(color=colors["block"], label="rest of block: updated now"),
                       Patch(color=colors["lazy"], label="later blocks: updated once")],
              loc="upper center", bbox_to_anchor=(0.5, -0.25), ncol=2)
    return ax
