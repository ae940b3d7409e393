"""Structure diagrams of chapter 3: which weights share a scale, double quantization's levels,
and LLM.int8()'s split of a matrix product. Taught in book/03_quantization.md.
"""

from __future__ import annotations

import numpy as np

from course_lib.plots.base import PALETTE

__all__ = ["scale_groups", "double_quant_hierarchy", "llm_int8_split"]

_GROUP_COLORS = [PALETTE["blue"], PALETTE["orange"], PALETTE["green"], PALETTE["sky"],
                 PALETTE["purple"], PALETTE["yellow"], PALETTE["vermillion"]]


def _positive_int(value, name: str, func: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{func}: {name} must be an int, got {value!r}")
    if value < 1:
        raise ValueError(f"{func}: {name} must be positive, got {value}")
    return int(value)


def scale_groups(rows: int = 8, cols: int = 256, group_size: int = 64, width: float = 9.0):
    """One (rows, cols) weight matrix drawn three times, coloured by which weights share a
    scale: per tensor (one scale), per channel (one per row), per group of ``group_size``
    consecutive weights of a row. Returns the figure."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    rows = _positive_int(rows, "rows", "scale_groups")
    cols = _positive_int(cols, "cols", "scale_groups")
    group_size = _positive_int(group_size, "group_size", "scale_groups")
    if cols % group_size:
        raise ValueError(f"scale_groups: cols ({cols}) must be a multiple of group_size "
                         f"({group_size})")
    n_groups = cols // group_size
    r, c = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    schemes = [
        ("per tensor", np.zeros((rows, cols), dtype=int), 1),
        ("per channel (row)", r, rows),
        (f"per group of {group_size}", r * n_groups + c // group_size, rows * n_groups),
    ]
    cmap = ListedColormap(_GROUP_COLORS)
    fig, axes = plt.subplots(3, 1, figsize=(width, 1.0 + 1.55 * 3), layout="constrained")
    for ax, (label, ids, n) in zip(axes, schemes, strict=True):
        # neighbouring groups get different colours (7 colours, cycled)
        ax.imshow(ids % len(_GROUP_COLORS), cmap=cmap, vmin=0, vmax=len(_GROUP_COLORS) - 1,
                  aspect="auto", interpolation="nearest")
        for y in np.arange(1, rows) - 0.5:
            ax.axhline(y, color="white", lw=0.8)
        if "group" in label:
            for x in np.arange(group_size, cols, group_size) - 0.5:
                ax.axvline(x, color="white", lw=2.5)
        ax.set_title(f"{label}: {n} scale{'s' if n > 1 else ''}", loc="left", fontsize=12)
        ax.set_yticks([0, rows - 1], ["row 0", f"row {rows - 1}"])
        ax.set_xticks([0, cols - 1], ["0", str(cols - 1)])
        ax.grid(False)
    axes[-1].set_xlabel(f"input feature (columns of a {rows} x {cols} weight matrix)")
    return fig


def double_quant_hierarchy(group_size: int = 64, group_size2: int = 256, code_bits: int = 4,
                           width: float = 9.0):
    """Double quantization as three levels of boxes, each with what it costs per weight:
    4-bit codes; one absmax per ``group_size`` weights (fp32, or 8-bit after double
    quantization); one fp32 scale per ``group_size2`` absmaxes. Returns the figure."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    g1 = _positive_int(group_size, "group_size", "double_quant_hierarchy")
    g2 = _positive_int(group_size2, "group_size2", "double_quant_hierarchy")
    b = _positive_int(code_bits, "code_bits", "double_quant_hierarchy")
    plain = 32 / g1
    dq1, dq2 = 8 / g1, 32 / (g1 * g2)
    levels = [
        (f"{g1} weights", f"{b}-bit NF4 codes", f"{b} bits per weight ({b / 8:g} bytes)",
         PALETTE["sky"]),
        (f"1 absmax per {g1} weights", "fp32, or an 8-bit code",
         f"32/{g1} = {plain:g} → 8/{g1} = {dq1:.3f} bits per weight", PALETTE["orange"]),
        (f"1 scale per {g2} absmaxes", "fp32 (the second level)",
         f"32/({g1}·{g2}) = {dq2:.4f} bits per weight", PALETTE["green"]),
    ]
    fig, ax = plt.subplots(figsize=(width, 4.4))
    ys = [2.4, 1.2, 0.0]
    for (head, fmt, cost, color), y in zip(levels, ys, strict=True):
        ax.add_patch(FancyBboxPatch((0.0, y), 3.6, 0.8, boxstyle="round,pad=0.04",
                                    facecolor=color, alpha=0.35, edgecolor=color, lw=1.5))
        ax.text(0.15, y + 0.55, head, fontsize=12, fontweight="bold", va="center")
        ax.text(0.15, y + 0.22, fmt, fontsize=11, va="center")
        ax.text(3.9, y + 0.4, cost, fontsize=11, va="center")
    for y_top, y_bottom, label in ((2.4, 2.0, "scaled by"), (1.2, 0.8, "scaled by")):
        ax.add_patch(FancyArrowPatch((1.8, y_top), (1.8, y_bottom), arrowstyle="-|>",
                                     mutation_scale=16, color=PALETTE["black"], lw=1.2))
        ax.text(1.9, (y_top + y_bottom) / 2, label, fontsize=10, va="center")
    total_plain = b + plain
    total_dq = b + dq1 + dq2
    ax.text(0.0, -0.55, f"bits per weight: {total_plain:g} without, {total_dq:.3f} with double "
            f"quantization ({total_plain / 8:.4f} → {total_dq / 8:.4f} bytes)", fontsize=11)
    ax.set_xlim(-0.1, 7.6)
    ax.set_ylim(-0.8, 3.3)
    ax.axis("off")
    ax.set_title("Double quantization: the scales are quantized too", fontsize=12)
    return fig


def _cells(ax, values, x0, y0, highlight_cols=(), highlight_rows=(), label=None,
           fmt="{:.0f}", dim_rest=False):
    """Draw a matrix as a grid of cells with its values; highlighted columns / rows in
    vermillion, the rest blue (faded where ``dim_rest``)."""
    from matplotlib.patches import Rectangle

    values = np.asarray(values, dtype=float)
    n_r, n_c = values.shape
    for i in range(n_r):
        for j in range(n_c):
            hot = j in highlight_cols or i in highlight_rows
            color = PALETTE["vermillion"] if hot else PALETTE["blue"]
            alpha = 0.55 if hot else (0.12 if dim_rest else 0.25)
            ax.add_patch(Rectangle((x0 + j, y0 - i - 1), 1, 1, facecolor=color, alpha=alpha,
                                   edgecolor="white", lw=1.5))
            ax.text(x0 + j + 0.5, y0 - i - 0.5, fmt.format(values[i, j]), ha="center",
                    va="center", fontsize=10)
    if label:
        ax.text(x0 + n_c / 2, y0 + 0.35, label, ha="center", va="bottom", fontsize=11,
                fontweight="bold")


def llm_int8_split(x, w, threshold: float = 6.0, width: float = 9.0):
    """LLM.int8()'s decomposition of ``x @ w.T`` drawn on a small example: the outlier
    columns of ``x`` and the matching rows of ``w.T`` highlighted, the 16-bit product of those,
    the int8 product of the rest, and their sum. ``x`` (tokens, in), ``w`` (out, in), both at
    most 8 x 8. Returns the figure."""
    import matplotlib.pyplot as plt

    x = np.asarray(x, dtype=float)
    w = np.asarray(w, dtype=float)
    if x.ndim != 2 or w.ndim != 2 or x.shape[1] != w.shape[1]:
        raise ValueError(f"llm_int8_split: x (tokens, in) and w (out, in) must share 'in', got "
                         f"{x.shape} and {w.shape}")
    if max(x.shape + w.shape) > 8:
        raise ValueError(f"llm_int8_split: a drawing needs x and w of at most 8 x 8, got "
                         f"{x.shape} and {w.shape}")
    if not np.isfinite(x).all() or not np.isfinite(w).all():
        raise ValueError("llm_int8_split: x and w must be finite")
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or threshold <= 0:
        raise ValueError(f"llm_int8_split: threshold must be a positive number, got {threshold!r}")
    hot = set(np.nonzero((np.abs(x) >= threshold).any(axis=0))[0].tolist())
    mask = np.array([j in hot for j in range(x.shape[1])])
    wt = w.T
    part_o = x[:, mask] @ wt[mask]
    part_r = x[:, ~mask] @ wt[~mask]
    t, d = x.shape
    o = w.shape[0]
    whole = bool(np.all(x == np.round(x)) and np.all(w == np.round(w)))
    fmt = "{:.0f}" if whole else "{:.1f}"
    fig, ax = plt.subplots(figsize=(width, 0.62 * (max(t, d) + 3)))
    _cells(ax, x, 0, 0, highlight_cols=hot, label="X (tokens × in)")
    xw = d + 1.2
    _cells(ax, wt, xw, 0, highlight_rows=hot, label="Wᵀ (in × out)")
    xr = xw + o + 1.5
    gap = o + 0.9
    _cells(ax, part_o, xr, 0, highlight_rows=range(t), label="outlier part\n(16-bit)", fmt=fmt)
    ax.text(xr + o + 0.45, -t / 2, "+", fontsize=16, ha="center", va="center")
    _cells(ax, part_r, xr + gap, 0, label="the rest\n(int8)", fmt=fmt)
    ax.text(xr + gap + o + 0.45, -t / 2, "=", fontsize=16, ha="center", va="center")
    _cells(ax, part_o + part_r, xr + 2 * gap, 0, label="X Wᵀ", fmt=fmt, dim_rest=True)
    cols = ", ".join(str(j) for j in sorted(hot)) or "none"
    ax.text(0, -max(t, d) - 0.6, f"|x| ≥ {threshold:g} in column(s) {cols}: those columns of X "
            "and rows of Wᵀ are multiplied in 16-bit, everything else in int8", fontsize=10,
            va="top")
    ax.set_xlim(-0.2, xr + 2 * gap + o + 0.2)
    ax.set_ylim(-max(t, d) - 1.4, 1.2)
    ax.set_aspect("equal")
    ax.axis("off")
    return fig
