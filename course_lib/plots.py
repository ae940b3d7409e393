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


# --- chapter 5: fine-tuning diagrams ---
def token_strip(ax, tokens: Sequence[str], trained: Sequence[bool], title: str = "") -> None:
    """Tokens as a row of boxes; the ones a loss is computed on are filled.

    Taught in book/05_finetuning.md (the loss on the response only against on everything).
    """
    from matplotlib.patches import Rectangle

    if len(tokens) != len(trained):
        raise ValueError(f"token_strip: {len(tokens)} tokens but {len(trained)} flags")
    x = 0.0
    for text, on in zip(tokens, trained):
        width = max(0.6, 0.11 * len(text) + 0.25)
        ax.add_patch(Rectangle((x, 0), width - 0.05, 1, facecolor=PALETTE["orange"] if on
                               else "#eeeeee", edgecolor="#555555", linewidth=0.6))
        ax.text(x + (width - 0.05) / 2, 0.5, text, ha="center", va="center", fontsize=7)
        x += width
    ax.set_xlim(-0.1, x + 0.1)
    ax.set_ylim(-0.2, 1.2)
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=10, loc="left")


def lora_diagram(d_in: int, d_out: int, r: int):
    """The LoRA structure: frozen W (d_out x d_in) beside B (d_out x r) times A (r x d_in).

    Drawn schematically (W as a square; B and A thin, as r is small). Taught in
    book/05_finetuning.md.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    fig, ax = plt.subplots(figsize=(7.5, 3.0))
    side, thin = 3.0, 0.35
    ax.add_patch(Rectangle((0, 0), side, side, facecolor="#dddddd", edgecolor="k"))
    ax.text(side / 2, side / 2, f"W, frozen\n{d_out} x {d_in}\n{d_out * d_in:,} numbers",
            ha="center", va="center", fontsize=10)
    ax.text(side + 0.45, side / 2, "+", fontsize=20, ha="center", va="center")
    bx = side + 0.9
    ax.add_patch(Rectangle((bx, 0), thin, side, facecolor=PALETTE["orange"], edgecolor="k"))
    ax.text(bx + thin / 2, -0.15, f"B: {d_out} x {r}\nstarts at 0", ha="center", va="top",
            fontsize=9)
    ax.text(bx + thin + 0.3, side - thin / 2, "x", fontsize=13, ha="center", va="center")
    ax0 = bx + thin + 0.6
    ax.add_patch(Rectangle((ax0, side - thin), side, thin, facecolor=PALETTE["sky"],
                           edgecolor="k"))
    ax.text(ax0 + side / 2, side + 0.1, f"A: {r} x {d_in}, random", ha="center", va="bottom",
            fontsize=9)
    ax.text(ax0 + side / 2, side / 2 - 0.3,
            f"trained: r (d_in + d_out)\n= {r} x ({d_in} + {d_out})\n= {r * (d_in + d_out):,}",
            ha="center", va="center", fontsize=10)
    ax.set_xlim(-0.2, ax0 + side + 0.2)
    ax.set_ylim(-1.0, side + 0.6)
    ax.set_aspect("equal")
    ax.axis("off")
    return fig
