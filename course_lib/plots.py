"""One look for every figure in the book, and the figures that recur across chapters.

Call `use_style()` once at the top of a chapter; draw attention maps (and any other matrix a
reader should look at cell by cell) with `heatmap`. Used in every chapter of book/.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib as mpl
import numpy as np

__all__ = ["PALETTE", "SEQUENTIAL_CMAP", "DIVERGING_CMAP", "use_style", "heatmap"]

# Okabe & Ito (2008), "Color Universal Design": eight colours that stay distinct under the
# common forms of colour blindness. Black is kept last: it is for reference lines.
PALETTE: dict[str, str] = {
    "blue": "#0072B2",
    "orange": "#E69F00",
    "green": "#009E73",
    "vermillion": "#D55E00",
    "sky": "#56B4E9",
    "purple": "#CC79A7",
    "yellow": "#F0E442",
    "black": "#000000",
}
# Perceptually uniform maps that read correctly in greyscale and for colour-blind readers.
SEQUENTIAL_CMAP = "viridis"  # probabilities, attention weights, magnitudes
DIVERGING_CMAP = "RdBu_r"  # signed values: errors, weights around zero

_STYLE = {
    "axes.prop_cycle": mpl.cycler(color=list(PALETTE.values())),
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.grid.axis": "y",
    "grid.alpha": 0.3,
    "grid.linewidth": 0.6,
    "axes.titlesize": 12,
    "axes.titleweight": "bold",
    "axes.labelsize": 11,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
    "legend.fontsize": 10,
    "legend.frameon": False,
    "font.size": 11,
    "font.family": "sans-serif",
    "figure.figsize": (6.4, 4.0),
    "figure.dpi": 110,
    "savefig.dpi": 110,
    "savefig.bbox": "tight",
    "image.cmap": SEQUENTIAL_CMAP,
    "lines.linewidth": 2.0,
    "lines.markersize": 6,
}


def use_style() -> None:
    """Apply the course style to matplotlib's global settings (idempotent)."""
    mpl.rcParams.update(_STYLE)


def _as_matrix(matrix) -> np.ndarray:
    if hasattr(matrix, "detach"):  # a torch tensor, possibly on a GPU or needing grad
        matrix = matrix.detach().cpu().float().numpy()
    try:
        array = np.asarray(matrix, dtype=float)
    except (TypeError, ValueError) as err:
        raise ValueError(f"heatmap: matrix must be numeric, got {type(matrix).__name__}") from err
    if array.ndim != 2:
        raise ValueError(f"heatmap: matrix must be 2-D (rows, columns), got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"heatmap: matrix is empty (shape {array.shape})")
    return array


def _check_labels(labels, n: int, axis: str) -> list[str] | None:
    if labels is None:
        return None
    labels = [str(label) for label in labels]
    if len(labels) != n:
        raise ValueError(f"heatmap: {len(labels)} {axis}labels for {n} {axis}-positions")
    return labels


def heatmap(
    ax,
    matrix,
    xlabels: Sequence | None = None,
    ylabels: Sequence | None = None,
    title: str | None = None,
    annotate: bool = False,
    *,
    cmap: str | None = None,
    vmin: float | None = None,
    vmax: float | None = None,
    fmt: str = "{:.2f}",
    colorbar: bool = True,
):
    """Draw `matrix` (rows x columns) on `ax` as an image and return the `AxesImage`.

    For attention maps pass the weights of one head, shape (n_queries, n_keys), with the
    query tokens as `ylabels` and the key tokens as `xlabels`: row i then shows where query i
    looks. `annotate=True` writes each value in its cell (readable up to ~15 x 15); NaN cells
    (for example masked positions) are left blank. Accepts numpy arrays, nested lists and
    torch tensors. Bad input (not 2-D, empty, wrong number of labels) raises ValueError.
    """
    array = _as_matrix(matrix)
    n_rows, n_cols = array.shape
    xlabels = _check_labels(xlabels, n_cols, "x")
    ylabels = _check_labels(ylabels, n_rows, "y")

    image = ax.imshow(
        array, cmap=cmap or SEQUENTIAL_CMAP, vmin=vmin, vmax=vmax, aspect="auto",
        interpolation="nearest",
    )
    ax.grid(False)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_xticks(range(n_cols), labels=xlabels if xlabels is not None else range(n_cols))
    ax.set_yticks(range(n_rows), labels=ylabels if ylabels is not None else range(n_rows))
    ax.tick_params(length=0)
    if xlabels is not None and max((len(s) for s in xlabels), default=0) > 2:
        ax.tick_params(axis="x", labelrotation=45)
        for label in ax.get_xticklabels():
            label.set_horizontalalignment("right")
            label.set_rotation_mode("anchor")
    if title:
        ax.set_title(title)
    if colorbar:
        ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04)

    if annotate:
        lo, hi = image.get_clim()
        middle = (lo + hi) / 2
        for i in range(n_rows):
            for j in range(n_cols):
                value = array[i, j]
                if np.isnan(value):
                    continue
                # dark text on the bright end of viridis, light text on the dark end
                color = "black" if value > middle else "white"
                ax.text(j, i, fmt.format(value), ha="center", va="center",
                        color=color, fontsize=8)
    return image


# --- chapter 4 diagrams ---
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
