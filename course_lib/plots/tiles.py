"""Diagram of chapter 4: the tiles of the tiled attention forward."""

from __future__ import annotations

import numpy as np

from course_lib.plots.base import PALETTE

__all__ = ['flash_tile_grid']

def _tile_visible(i: int, j: int, n_q: int, n_k: int, block_q: int, block_k: int) -> bool:
    """Whether causal attention needs tile (i, j): its first key is seen by its last query."""
    last_query = min((i + 1) * block_q, n_q) - 1 + (n_k - n_q)
    return j * block_k <= last_query


def flash_tile_grid(n_q: int, n_k: int, block_q: int, block_k: int, steps, causal=False,
                    ncols: int = 2):
    """Draw which tiles of Q, K, V (and of the score matrix) are in fast memory, step by step.

    One panel per ``(i, j)`` in ``steps``: query tile i and key tile j of the tiled forward
    in ``course_lib.flash`` (query tiles outside, key tiles inside). Q sits left of the
    n_q x n_k score grid, K^T above it, V^T below it (key j's value under key j's column),
    and the output O with its running max and sum to the right. Tiles in fast memory at that
    step are orange, the score tile being computed red, tiles already done blue; with
    ``causal=True`` the tiles above the diagonal, which the loop skips, are hatched.
    Panels are laid out ``ncols`` to a row.
    Returns the figure. Taught in book/04_attention.md.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch, Rectangle

    for name, value in (("n_q", n_q), ("n_k", n_k), ("block_q", block_q), ("block_k", block_k)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"flash_tile_grid: {name} must be an int, got {value!r}")
        if value < 1:
            raise ValueError(f"flash_tile_grid: {name} must be >= 1, got {value}")
    t_r, t_c = -(-n_q // block_q), -(-n_k // block_k)
    steps = [tuple(s) for s in steps]
    if not steps:
        raise ValueError("flash_tile_grid: steps is empty")
    for i, j in steps:
        if not (0 <= i < t_r and 0 <= j < t_c):
            raise ValueError(f"flash_tile_grid: step {(i, j)} outside the {t_r} x {t_c} tiles")
        if causal and not _tile_visible(i, j, n_q, n_k, block_q, block_k):
            raise ValueError(f"flash_tile_grid: step {(i, j)} is a tile the causal loop skips")

    fast, current, done, hbm = PALETTE["orange"], PALETTE["vermillion"], PALETTE["sky"], "#e6e6e6"
    strip, gap = max(n_q, n_k) * 0.14, max(n_q, n_k) * 0.04
    if isinstance(ncols, bool) or not isinstance(ncols, int) or ncols < 1:
        raise ValueError(f"flash_tile_grid: ncols must be a positive int, got {ncols!r}")
    ncols = min(ncols, len(steps))
    nrows = -(-len(steps) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.7 * nrows), squeeze=False)
    for ax in axes.flat[len(steps):]:
        ax.axis("off")
    for ax, (i, j) in zip(axes.flat, steps):
        q_rows = (i * block_q, min((i + 1) * block_q, n_q))
        k_cols = (j * block_k, min((j + 1) * block_k, n_k))

        def box(x0, y0, w, h, color, ax=ax, edge="white", **kw):
            ax.add_patch(Rectangle((x0, y0), w, h, facecolor=color, edgecolor=edge,
                                   linewidth=1.0, **kw))

        for ii in range(t_r):  # the score grid, tile by tile
            for jj in range(t_c):
                x0, y0 = jj * block_k, ii * block_q
                w, h = min(block_k, n_k - x0), min(block_q, n_q - y0)
                skipped = causal and not _tile_visible(ii, jj, n_q, n_k, block_q, block_k)
                if skipped:
                    box(x0, y0, w, h, "white", edge="#b0b0b0", hatch="///")
                elif (ii, jj) == (i, j):
                    box(x0, y0, w, h, current)
                elif (ii, jj) < (i, j):
                    box(x0, y0, w, h, done)
                else:
                    box(x0, y0, w, h, hbm)
        # Q (left), O with m and l (right), K^T (above), V^T (below): grey in HBM
        box(-gap - strip, 0, strip, n_q, hbm)
        box(-gap - strip, q_rows[0], strip, q_rows[1] - q_rows[0], fast)
        box(n_k + gap, 0, strip, n_q, hbm)
        box(n_k + gap, q_rows[0], strip, q_rows[1] - q_rows[0], fast)  # O_i, m_i, l_i
        box(0, -gap - strip, n_k, strip, hbm)
        box(k_cols[0], -gap - strip, k_cols[1] - k_cols[0], strip, fast)
        box(0, n_q + gap, n_k, strip, hbm)
        box(k_cols[0], n_q + gap, k_cols[1] - k_cols[0], strip, fast)
        mid_q, mid_k = (q_rows[0] + q_rows[1]) / 2, (k_cols[0] + k_cols[1]) / 2
        labels = ((-gap - strip / 2, mid_q, f"$Q_{i}$", "center"),
                  (n_k + gap + strip, mid_q, f" $O_{i}, m_{i}, \\ell_{i}$", "left"),
                  (mid_k, -gap - strip / 2, f"$K_{j}^T$", "center"),
                  (mid_k, n_q + gap + strip / 2, f"$V_{j}^T$", "center"),
                  (mid_k, mid_q, f"$S_{{{i}{j}}}$", "center"))
        for x, y, text, align in labels:
            ax.text(x, y, text, ha=align, va="center", fontsize=11)
        ax.set_xlim(-2 * gap - strip, n_k + 2 * gap + 3 * strip)
        ax.set_ylim(n_q + 2 * gap + strip, -2 * gap - strip)
        ax.set_aspect("equal")
        ax.axis("off")
        ax.set_title(f"query tile {i}, key tile {j}", fontsize=11)
    handles = [Patch(facecolor=fast, label="in fast memory (SRAM)"),
               Patch(facecolor=current, label="score tile computed now"),
               Patch(facecolor=done, label="tiles done (never stored)"),
               Patch(facecolor=hbm, label="in main memory (HBM)")]
    if causal:
        handles.append(Patch(facecolor="white", edgecolor="black", hatch="///",
                             label="skipped (causal)"))
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 3), fontsize=10,
               bbox_to_anchor=(0.5, 0.0))
    fig.tight_layout(rect=(0, 0.1 / nrows, 1, 1))
    return fig
