"""Figures of chapter 6: GPTQ's lazy column blocks, the OBS step on two correlated weights,
and RTN against GPTQ across bit widths."""

from __future__ import annotations

import numpy as np

from course_lib.plots.base import PALETTE

__all__ = ['lazy_blocks', 'obs_contour', 'bits_curve']


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


def _vec2(name, v):
    a = np.asarray(v, dtype=float)
    if a.shape != (2,) or not np.isfinite(a).all():
        raise ValueError(f"obs_contour: {name} must be 2 finite numbers, got {v!r}")
    return a


def obs_contour(ax, h, w, points: dict, step: float | None = None, span: float = 0.3):
    """Contours of the quadratic loss ``E(p) = (p - w)^T h (p - w) / 2`` of two weights, the
    original point ``w`` and each of ``points`` (label -> (w1, w2)), each labelled with its E.

    ``h`` is the 2 x 2 Hessian (symmetric positive definite); ``step`` draws the rounding grid
    as dots. Returns the losses ``{label: E}`` it wrote on the figure."""
    h = np.asarray(h, dtype=float)
    if h.shape != (2, 2) or not np.isfinite(h).all() or not np.allclose(h, h.T) \
            or np.linalg.eigvalsh(h).min() <= 0:
        raise ValueError("obs_contour: h must be a symmetric positive definite 2 x 2 matrix")
    w = _vec2("w", w)
    if not points:
        raise ValueError("obs_contour: points is empty")
    pts = {label: _vec2(f"points[{label!r}]", p) for label, p in points.items()}

    def loss(p):
        d = p - w
        return 0.5 * d @ h @ d

    allp = np.stack([w, *pts.values()])
    lo, hi = allp.min(0) - span, allp.max(0) + span
    g1, g2 = np.meshgrid(np.linspace(lo[0], hi[0], 200), np.linspace(lo[1], hi[1], 200))
    d1, d2 = g1 - w[0], g2 - w[1]
    e = 0.5 * (h[0, 0] * d1**2 + 2 * h[0, 1] * d1 * d2 + h[1, 1] * d2**2)
    levels = np.geomspace(max(e.max(), 1e-12) * 1e-3, e.max(), 9)
    ax.contour(g1, g2, e, levels=levels, colors=PALETTE["sky"], linewidths=1)
    if step is not None:
        k1 = np.arange(np.ceil(lo[0] / step), np.floor(hi[0] / step) + 1) * step
        k2 = np.arange(np.ceil(lo[1] / step), np.floor(hi[1] / step) + 1) * step
        q1, q2 = np.meshgrid(k1, k2)
        ax.scatter(q1, q2, s=12, color="#999999", zorder=2, label="grid points")
    ax.scatter(*w, s=90, marker="*", color=PALETTE["black"], zorder=4, label="original w: E = 0")
    colors = [PALETTE["vermillion"], PALETTE["green"], PALETTE["blue"], PALETTE["purple"]]
    markers = ["o", "s", "D", "^"]
    losses = {}
    for i, (label, p) in enumerate(pts.items()):
        losses[label] = float(loss(p))
        c = colors[i % len(colors)]
        ax.annotate("", p, xytext=w, arrowprops=dict(arrowstyle="->", color=c, lw=1.5))
        ax.scatter(*p, s=60, color=c, marker=markers[i % len(markers)], zorder=5,
                   label=f"{label}: E = {losses[label]:.2g}")
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    ax.set_xlabel("weight $w_1$")
    ax.set_ylabel("weight $w_2$")
    ax.set_aspect("equal")
    return losses


def bits_curve(ax, bits, curves: dict, dense: float):
    """Perplexity against bits per weight: one line per method (label -> perplexities, one
    per entry of ``bits``), the dense model as a dashed line; log scale."""
    from matplotlib.ticker import FuncFormatter

    bits = list(bits)
    if not bits or not curves:
        raise ValueError("bits_curve: bits and curves must be non-empty")
    styles = {"RTN": PALETTE["vermillion"], "GPTQ": PALETTE["blue"]}
    for label, ys in curves.items():
        ys = list(ys)
        if len(ys) != len(bits):
            raise ValueError(f"bits_curve: curves[{label!r}] has {len(ys)} values for "
                             f"{len(bits)} bit widths")
        method = label.split()[0]
        ax.plot(bits, ys, marker="o", color=styles.get(method),
                linestyle="--" if "group" in label else "-", label=label)
    ax.axhline(dense, color="black", linestyle=":", linewidth=1, label="dense (fp32)")
    ax.set_yscale("log")
    plain = FuncFormatter(lambda v, _: f"{v:g}")     # 20, 30, 100: not 2 x 10^1
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(FuncFormatter(    # label 20, 30, 50 between the decades
        lambda v, _: f"{v:g}" if f"{v:g}"[0] in "235" else ""))
    ax.set_xticks(bits)
    ax.set_xlabel("bits per weight")
    ax.set_ylabel("held-out perplexity (log)")
    ax.invert_xaxis()
    ax.legend()
    return ax
