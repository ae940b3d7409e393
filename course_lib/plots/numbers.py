"""Diagrams of chapter 3: bit layouts, quantization grids, NF4 levels on a density."""

from __future__ import annotations

import numpy as np

from course_lib.plots.base import PALETTE

__all__ = ["BIT_FIELD_COLORS", "bit_layout", "quantization_grid", "levels_on_density"]

# Structures rather than results: how a number's bits are laid out, and how quantization maps
# real values onto an integer grid. Taught in book/03_quantization.md.



BIT_FIELD_COLORS: dict[str, str] = {
    "sign": PALETTE["vermillion"],
    "exponent": PALETTE["sky"],
    "mantissa": PALETTE["green"],
    "integer": PALETTE["orange"],
}


def bit_layout(rows, title: str | None = None, width: float = 9.0):
    """Draw bit patterns as rows of coloured boxes, one box per bit; return the figure.

    `rows` is a list of `(label, fields, note)`: `fields` a list of `(kind, bitstring)` with
    kind in `BIT_FIELD_COLORS` ("sign", "exponent", "mantissa", "integer"), `note` the text
    written to the right (the value). Under each field its width is written ("8 exp").
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    rows = list(rows)
    if not rows:
        raise ValueError("bit_layout: rows is empty")
    longest = 0
    for label, fields, _ in rows:
        for kind, bits in fields:
            if kind not in BIT_FIELD_COLORS:
                raise ValueError(f"bit_layout: unknown field kind {kind!r} in row {label!r}")
            if not bits or set(bits) - {"0", "1"}:
                raise ValueError(f"bit_layout: field {kind!r} of {label!r} is not a bit string")
        longest = max(longest, sum(len(b) for _, b in fields))
    short = {"sign": "sign", "exponent": "exp", "mantissa": "mantissa", "integer": "int"}
    fig, ax = plt.subplots(figsize=(width, 0.95 * len(rows) + 0.9))
    for i, (label, fields, note) in enumerate(rows):
        y = 1.3 * (len(rows) - 1 - i)
        x = 0
        for kind, bits in fields:
            for b in bits:
                ax.add_patch(Rectangle((x, y), 1, 0.8, facecolor=BIT_FIELD_COLORS[kind],
                                       edgecolor="white", linewidth=1))
                ax.text(x + 0.5, y + 0.4, b, ha="center", va="center", fontsize=9)
                x += 1
            name = short[kind] if len(bits) > 3 or kind == "sign" else short[kind][:3] + "."
            text = name if kind == "sign" else f"{len(bits)} {name}"  # one bit: no count
            ax.text(x - len(bits) / 2, y - 0.12, text, ha="center",
                    va="top", fontsize=9, color="#444444")
        ax.text(-0.6, y + 0.4, label, ha="right", va="center", fontsize=10, fontweight="bold")
        ax.text(longest + 1, y + 0.4, note, ha="left", va="center", fontsize=9,
                family="monospace")
    for kind, color in BIT_FIELD_COLORS.items():
        ax.add_patch(Rectangle((0, 0), 0, 0, facecolor=color, label=kind))
    ax.legend(loc="lower center", ncol=4, bbox_to_anchor=(0.5, 1.0), frameon=False)
    ax.set_xlim(-8, longest + 14)
    ax.set_ylim(-0.6, 1.3 * len(rows) - 0.3)
    ax.axis("off")
    if title:
        ax.set_title(title, pad=26)
    return fig


def quantization_grid(ax, x, grid, codes, code_labels=None, title: str | None = None,
                      source_range: tuple[float, float] | None = None):
    """Draw real values `x` (top line) snapping to the points of an integer grid (bottom).

    `grid[k]` is the real value that code k stands for (its dequantized value), `codes[i]`
    the index into `grid` that `x[i]` is rounded to, `code_labels[k]` the integer written
    under grid point k (default: k). `source_range` brackets the range mapped onto the grid.
    """
    x = np.asarray(x, dtype=float).ravel()
    grid = np.asarray(grid, dtype=float).ravel()
    codes = np.asarray(codes).ravel()
    if x.size == 0 or grid.size == 0:
        raise ValueError("quantization_grid: x and grid must be non-empty")
    if codes.shape != x.shape:
        raise ValueError(f"quantization_grid: {codes.size} codes for {x.size} values")
    if not np.isfinite(x).all() or not np.isfinite(grid).all():
        raise ValueError("quantization_grid: x and grid must be finite")
    if codes.min() < 0 or codes.max() >= grid.size:
        raise ValueError("quantization_grid: codes must index into grid")
    labels = [str(k) for k in range(grid.size)] if code_labels is None else list(code_labels)
    if len(labels) != grid.size:
        raise ValueError(f"quantization_grid: {len(labels)} code_labels for {grid.size} points")
    lo = min(x.min(), grid.min())
    hi = max(x.max(), grid.max())
    pad = 0.06 * (hi - lo or 1.0)
    ax.hlines([1, 0], lo - pad, hi + pad, color="#888888", lw=1)
    for xi, k in zip(x, codes, strict=True):
        ax.annotate("", xy=(grid[k], 0.06), xytext=(xi, 0.94),
                    arrowprops=dict(arrowstyle="->", color=PALETTE["blue"], lw=1.2))
    ax.plot(x, np.ones_like(x), "o", color=PALETTE["blue"], ms=6, zorder=3)
    ax.plot(grid, np.zeros_like(grid), "|", color=PALETTE["black"], ms=14, mew=1.5)
    for g, lab in zip(grid, labels, strict=True):
        ax.text(g, -0.16, lab, ha="center", va="top", fontsize=9)
    zero_at = np.flatnonzero(grid == 0.0)
    if zero_at.size:
        ax.plot([0.0], [0.0], "s", color=PALETTE["vermillion"], ms=6, zorder=3,
                label="code for 0.0")
        ax.legend(loc="center right", fontsize=9)
    if source_range is not None:
        a, b = source_range
        ax.plot([a, a, b, b], [1.12, 1.2, 1.2, 1.12], color=PALETTE["orange"], lw=1.5)
        ax.text((a + b) / 2, 1.24, "source range", ha="center", va="bottom", fontsize=9,
                color=PALETTE["orange"])
    ax.text(lo - pad, 1.05, "real values", ha="left", va="bottom", fontsize=9)
    ax.text(lo - pad, -0.42, "integer codes", ha="left", va="top", fontsize=9)
    ax.set_ylim(-0.6, 1.45)
    ax.set_xlabel("real value")
    ax.set_yticks([])
    ax.grid(False)
    for side in ("left", "top", "right"):
        ax.spines[side].set_visible(False)
    if title:
        ax.set_title(title)
    return ax


def levels_on_density(ax, levels, x, density, other_levels=None, labels=("levels", "other")):
    """Shade a density in alternating slices between neighbouring levels' midpoints (the
    values each level stands for), mark each level, and tick `other_levels` underneath.

    Used for NF4: the slices of a normal curve that its 16 levels stand for, against int4's
    evenly spaced levels.
    """
    levels = np.sort(np.asarray(levels, dtype=float).ravel())
    x = np.asarray(x, dtype=float).ravel()
    density = np.asarray(density, dtype=float).ravel()
    if levels.size < 2 or x.size != density.size or x.size < 2:
        raise ValueError("levels_on_density: need >= 2 levels and x, density of one length")
    if not (np.isfinite(levels).all() and np.isfinite(x).all() and np.isfinite(density).all()):
        raise ValueError("levels_on_density: levels, x and density must be finite")
    edges = np.concatenate([[x[0]], (levels[1:] + levels[:-1]) / 2, [x[-1]]])
    for k in range(levels.size):
        inside = (x >= edges[k]) & (x <= edges[k + 1])
        ax.fill_between(x[inside], density[inside], color=PALETTE["sky"] if k % 2 else
                        PALETTE["blue"], alpha=0.45, linewidth=0)
    ax.plot(x, density, color=PALETTE["black"], lw=1)
    top = float(density.max())
    ax.vlines(levels, 0, top * 1.05, color=PALETTE["vermillion"], lw=1.2, label=labels[0])
    if other_levels is not None:
        other = np.asarray(other_levels, dtype=float).ravel()
        ax.plot(other, np.full(other.shape, -0.06 * top), "|", color=PALETTE["black"], ms=12,
                mew=1.5, label=labels[1])
    ax.set_ylim(-0.12 * top, top * 1.12)
    ax.set_xlim(x[0], x[-1] + 0.22 * (x[-1] - x[0]))  # room for the legend on the right
    ax.legend(loc="upper right", fontsize=9)
    return ax
