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


