"""Diagrams of chapter 1: the pipeline, the block, the three families; label placement."""

from __future__ import annotations

import numpy as np

from course_lib.plots.base import PALETTE

__all__ = ['pipeline_diagram', 'block_diagram', 'families_diagram', 'mark_cell', 'place_labels']

# Structure diagrams for book/01_transformer.md: the model as a pipeline, one block, the three
# families mapped onto course_lib.models, and two helpers for reading figures (a marked
# heatmap cell, scatter labels that never overlap). Drawn with plain matplotlib patches.

_BOX_COLORS = {
    "data": "#E8E8E8",          # text, ids, logits: things, not computations
    "embed": "#CFE6F5",         # lookups
    "attn": "#FBE3B5",          # attention
    "mlp": "#CDEBDD",           # per-position MLP
    "norm": "#F2D4E4",          # LayerNorm
    "head": "#F6D2BF",          # output projections
}


def _box(ax, x, y, w, h, text, kind="data", fontsize=10, stack=0):
    """A rounded box centred at (x, y); `stack` > 0 draws shadow copies behind it."""
    from matplotlib.patches import FancyBboxPatch

    for s in range(stack, 0, -1):
        ax.add_patch(FancyBboxPatch((x - w / 2 + 0.06 * s, y - h / 2 + 0.06 * s), w, h,
                                    boxstyle="round,pad=0.02,rounding_size=0.08",
                                    facecolor=_BOX_COLORS[kind], edgecolor="0.35", lw=1,
                                    zorder=1))
    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h,
                                boxstyle="round,pad=0.02,rounding_size=0.08",
                                facecolor=_BOX_COLORS[kind], edgecolor="0.2", lw=1.2, zorder=2))
    ax.text(x, y, text, ha="center", va="center", fontsize=fontsize, zorder=3)


def _arrow(ax, start, end, text=None, color="0.15", style="-|>", connection="arc3"):
    ax.annotate("", xy=end, xytext=start, zorder=4,
                arrowprops=dict(arrowstyle=style, color=color, lw=1.4, shrinkA=0, shrinkB=0,
                                connectionstyle=connection))
    if text:
        ax.text((start[0] + end[0]) / 2, (start[1] + end[1]) / 2, text, fontsize=8.5,
                ha="center", va="bottom", color=color, zorder=5)


def _canvas(width, height, figsize):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=figsize)
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.set_aspect("equal")
    ax.axis("off")
    return fig, ax


def pipeline_diagram(stages, repeat_index: int | None = None, n_repeat: int = 1,
                     title: str | None = None):
    """The model as a left-to-right pipeline: one box per stage, arrows between them.

    `stages` is a list of (name, detail, kind) with kind in "data", "embed", "attn", "mlp",
    "norm", "head"; `detail` (for example a shape measured on a real input) is written under
    the box. The stage at `repeat_index` is drawn as a stack of `n_repeat` boxes. Returns
    the Figure. Taught in book/01_transformer.md (the architecture figure).
    """
    stages = list(stages)
    if len(stages) < 2:
        raise ValueError(f"pipeline_diagram: stages needs at least 2 entries, got {len(stages)}")
    for i, stage in enumerate(stages):
        if len(stage) != 3 or stage[2] not in _BOX_COLORS:
            raise ValueError(f"pipeline_diagram: stages[{i}] must be (name, detail, kind) with "
                             f"kind in {sorted(_BOX_COLORS)}, got {stage!r}")
    if repeat_index is not None and not (isinstance(repeat_index, int)
                                         and 0 <= repeat_index < len(stages)):
        raise ValueError(f"pipeline_diagram: repeat_index {repeat_index!r} outside "
                         f"0..{len(stages) - 1}")
    if not isinstance(n_repeat, int) or n_repeat < 1:
        raise ValueError(f"pipeline_diagram: n_repeat must be a positive int, got {n_repeat!r}")
    step, w, h = 2.3, 1.9, 1.0
    width = step * len(stages)
    fig, ax = _canvas(width, 2.5, (1.5 * len(stages), 2.0))
    for i, (name, detail, kind) in enumerate(stages):
        x = step * i + step / 2
        stack = min(n_repeat - 1, 3) if i == repeat_index else 0
        _box(ax, x, 1.6, w, h, name, kind, fontsize=10, stack=stack)
        ax.text(x, 0.85, detail, ha="center", va="top", fontsize=9, color="0.25")
        if i:
            _arrow(ax, (x - step + w / 2 + 0.02, 1.6), (x - w / 2 - 0.04, 1.6))
    if title:
        ax.set_title(title)
    return fig


def block_diagram(cross_attention: bool = False, title: str | None = None):
    """One pre-LayerNorm transformer block, bottom to top, with its residual connections.

    Each box is labelled with the attribute of `course_lib.models.Block` that computes it
    (`ln1`, `attn`, `ln2`, `mlp`, and `ln_cross`, `cross_attn` when `cross_attention`).
    Returns the Figure. Taught in book/01_transformer.md.
    """
    from matplotlib.patches import Circle

    if not isinstance(cross_attention, bool):
        raise TypeError(f"block_diagram: cross_attention must be a bool, got "
                        f"{type(cross_attention).__name__}")
    subs = [("ln1", "LayerNorm", "norm"), ("attn", "multi-head\nself-attention", "attn")]
    if cross_attention:
        subs += [("ln_cross", "LayerNorm", "norm"),
                 ("cross_attn", "cross-attention\n(keys, values: encoder)", "attn")]
    subs += [("ln2", "LayerNorm", "norm"), ("mlp", "MLP: Linear d→4d,\nGELU, Linear 4d→d",
                                            "mlp")]
    n_res = len(subs) // 2
    height = 1.6 + 2.6 * n_res + 0.6
    fig, ax = _canvas(6.0, height, (4.6, 0.75 * height + 0.4))
    xs, xb = 1.3, 3.6                     # residual stream, sub-layer boxes
    y = 0.5
    ax.text(xs, y - 0.1, "x  (T, d)", ha="center", va="top", fontsize=10)
    for r in range(n_res):
        (a_name, a_text, a_kind), (b_name, b_text, b_kind) = subs[2 * r], subs[2 * r + 1]
        y_norm, y_sub, y_add = y + 0.8, y + 1.8, y + 2.6
        _box(ax, xb, y_norm, 2.6, 0.55, f"{a_text}   [{a_name}]", a_kind, fontsize=9)
        _box(ax, xb, y_sub, 2.6, 0.85, f"{b_text}\n[{b_name}]", b_kind, fontsize=9)
        _arrow(ax, (xs, y + 0.4), (xb - 1.3, y_norm), connection="arc3,rad=0")
        _arrow(ax, (xb, y_norm + 0.28), (xb, y_sub - 0.43))
        _arrow(ax, (xb - 1.3, y_sub), (xs + 0.22, y_add - 0.05), connection="arc3,rad=0")
        _arrow(ax, (xs, y), (xs, y_add - 0.22))            # the residual: x itself
        ax.add_patch(Circle((xs, y_add), 0.22, facecolor="white", edgecolor="0.2", lw=1.2,
                            zorder=5))
        ax.text(xs, y_add, "+", ha="center", va="center", fontsize=13, zorder=6)
        y = y_add
    _arrow(ax, (xs, y + 0.22), (xs, y + 0.8))
    ax.text(xs, y + 0.85, "x  (T, d)", ha="center", va="bottom", fontsize=10)
    ax.text(0.15, height / 2, "residual stream", rotation=90, ha="center", va="center",
            fontsize=9, color="0.35")
    if title:
        ax.set_title(title)
    return fig


def families_diagram(title: str | None = None):
    """The three families side by side, each box named by its attribute in course_lib.models:
    `EncoderModel` (encoder-only), `GPT` (decoder-only), `EncoderDecoder` (with the
    cross-attention arrow from the encoder's output into every decoder block).

    Returns the Figure. Taught in book/01_transformer.md.
    """
    fig, ax = _canvas(15.6, 8.1, (9.0, 4.67))

    def header(x, name, subtitle):
        ax.text(x, 7.9, name, ha="center", va="center", fontsize=12, fontweight="bold",
                family="monospace")
        ax.text(x, 7.3, subtitle, ha="center", va="center", fontsize=9, color="0.3")

    def column(x, rows):
        y, centres = 0.4, []
        for i, (text, kind, stack) in enumerate(rows):
            h = 1.1 if stack else 0.6
            yc = y + h / 2
            _box(ax, x, yc, 3.3, h, text, kind, fontsize=9, stack=stack)
            if i:
                _arrow(ax, (x, centres[-1][1] + centres[-1][2] / 2 + 0.02),
                       (x, yc - h / 2 - 0.04))
            centres.append((x, yc, h))
            y += h + 0.45
        return centres

    header(1.8, "EncoderModel", "encoder-only (BERT)\nautoencoding")
    column(1.8, [("tokens with [MASK]", "data", 0), ("emb: Embeddings", "embed", 0),
                 ("blocks: N × Block\nno mask\n(bidirectional)", "attn", 3),
                 ("ln_f: LayerNorm", "norm", 0), ("mlm_head / classifier", "head", 0),
                 ("masked tokens / class", "data", 0)])
    header(5.4, "GPT", "decoder-only (GPT)\nautoregressive")
    column(5.4, [("tokens so far", "data", 0), ("emb: Embeddings", "embed", 0),
                 ("blocks: N × Block\ncausal mask", "attn", 3), ("ln_f: LayerNorm", "norm", 0),
                 ("lm_head", "head", 0), ("next token", "data", 0)])
    header(11.4, "EncoderDecoder", "encoder-decoder (T5)\nencoder reads, decoder writes")
    enc = column(9.3, [("source tokens", "data", 0), ("emb: Embeddings", "embed", 0),
                       ("encoder: N × Block\nno mask", "attn", 3),
                       ("ln_enc: LayerNorm", "norm", 0)])
    dec = column(13.5, [("<bos> + output\nso far", "data", 0), ("emb (shared)", "embed", 0),
                        ("decoder: N × Block\ncausal mask\n+ cross_attn", "attn", 3),
                        ("ln_f: LayerNorm", "norm", 0), ("lm_head", "head", 0),
                        ("next output token", "data", 0)])
    x0, y0, _ = enc[-1]
    x1, y1, _ = dec[2]
    _arrow(ax, (x0 + 1.67, y0), (x1 - 1.7, y1), color=PALETTE["vermillion"],
           connection="arc3,rad=-0.2")
    ax.text(x0 + 0.9, y0 + 0.45, "encoder output: the keys\nand values of every cross_attn",
            ha="center", va="bottom", fontsize=9, color=PALETTE["vermillion"])
    for x in (3.6, 7.3):
        ax.plot([x, x], [0.3, 8.1], color="0.7", lw=1, ls=":")
    if title:
        ax.set_title(title)
    return fig


def mark_cell(ax, row: int, col: int, color: str | None = None, lw: float = 2.5):
    """Outline cell (row, col) of a heatmap drawn by `heatmap`, to point at the value the
    prose cites. Returns the Rectangle. Taught in book/01_transformer.md."""
    from matplotlib.patches import Rectangle

    for name, value in (("row", row), ("col", col)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"mark_cell: {name} must be a non-negative int, got {value!r}")
    images = ax.get_images()
    if images:
        n_rows, n_cols = images[-1].get_array().shape[:2]
        if row >= n_rows or col >= n_cols:
            raise ValueError(f"mark_cell: cell ({row}, {col}) outside the {n_rows} x {n_cols} "
                             "heatmap")
    rect = Rectangle((col - 0.5, row - 0.5), 1, 1, fill=False,
                     edgecolor=color or PALETTE["vermillion"], lw=lw, zorder=10)
    ax.add_patch(rect)
    return rect


_LABEL_OFFSETS = [(4, 4), (4, -10), (-4, 4), (-4, -10), (6, -3), (-6, -3), (0, 8), (0, -14),
                  (10, 10), (-10, 10), (10, -16), (-10, -16)]


def place_labels(ax, xy, labels, fontsize: float = 8.5, color="0.1"):
    """Label points without overlapping labels: each label tries a few offsets around its
    point and takes the first whose box overlaps no label placed so far; a label with no free
    spot is left out. Returns the list of placed Text objects (in the order of `labels`,
    skipped ones absent). Taught in book/01_transformer.md (the embedding map)."""
    xy = np.asarray(xy, dtype=float)
    labels = [str(s) for s in labels]
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise ValueError(f"place_labels: xy must have shape (n, 2), got {xy.shape}")
    if len(labels) != len(xy):
        raise ValueError(f"place_labels: {len(labels)} labels for {len(xy)} points")
    if not np.isfinite(xy).all():
        raise ValueError("place_labels: xy contains NaN or infinite values")
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    placed, boxes = [], []
    for (x, y), label in zip(xy, labels):
        for dx, dy in _LABEL_OFFSETS:
            text = ax.annotate(label, (x, y), xytext=(dx, dy), textcoords="offset points",
                               fontsize=fontsize, color=color,
                               ha="left" if dx >= 0 else "right", va="bottom")
            box = text.get_window_extent(renderer).expanded(1.05, 1.1)
            if not any(box.overlaps(b) for b in boxes):
                placed.append(text)
                boxes.append(box)
                break
            text.remove()
    return placed
