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


# --- chapter 7: flow diagrams ---
__all__ += ["flow_diagram"]


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


# --- chapter 1 diagrams ---
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
    fig, ax = _canvas(15.6, 8.1, (10.5, 5.45))

    def header(x, name, subtitle):
        ax.text(x, 7.9, name, ha="center", va="center", fontsize=12, fontweight="bold",
                family="monospace")
        ax.text(x, 7.3, subtitle, ha="center", va="center", fontsize=9, color="0.3")

    def column(x, rows):
        y, centres = 0.4, []
        for i, (text, kind, stack) in enumerate(rows):
            h = 1.1 if stack else 0.6
            yc = y + h / 2
            _box(ax, x, yc, 2.9, h, text, kind, fontsize=8.5, stack=stack)
            if i:
                _arrow(ax, (x, centres[-1][1] + centres[-1][2] / 2 + 0.02),
                       (x, yc - h / 2 - 0.04))
            centres.append((x, yc, h))
            y += h + 0.45
        return centres

    header(1.8, "EncoderModel", "encoder-only (BERT)\nautoencoding")
    column(1.8, [("tokens with [MASK]", "data", 0), ("emb: Embeddings", "embed", 0),
                 ("blocks: N × Block\nno mask (bidirectional)", "attn", 3),
                 ("ln_f: LayerNorm", "norm", 0), ("mlm_head / classifier", "head", 0),
                 ("masked tokens / a class", "data", 0)])
    header(5.4, "GPT", "decoder-only (GPT)\nautoregressive")
    column(5.4, [("tokens so far", "data", 0), ("emb: Embeddings", "embed", 0),
                 ("blocks: N × Block\ncausal mask", "attn", 3), ("ln_f: LayerNorm", "norm", 0),
                 ("lm_head", "head", 0), ("next token", "data", 0)])
    header(11.4, "EncoderDecoder", "encoder-decoder (T5)\nencoder reads, decoder writes")
    enc = column(9.3, [("source tokens", "data", 0), ("emb: Embeddings", "embed", 0),
                       ("encoder: N × Block\nno mask", "attn", 3),
                       ("ln_enc: LayerNorm", "norm", 0)])
    dec = column(13.5, [("<bos> + output so far", "data", 0), ("emb (shared)", "embed", 0),
                        ("decoder: N × Block\ncausal mask\n+ cross_attn", "attn", 3),
                        ("ln_f: LayerNorm", "norm", 0), ("lm_head", "head", 0),
                        ("next output token", "data", 0)])
    x0, y0, _ = enc[-1]
    x1, y1, _ = dec[2]
    _arrow(ax, (x0 + 1.47, y0), (x1 - 1.5, y1), color=PALETTE["vermillion"],
           connection="arc3,rad=-0.2")
    ax.text(x0 + 0.9, y0 + 0.45, "encoder output: the keys\nand values of every cross_attn",
            ha="center", va="bottom", fontsize=8.5, color=PALETTE["vermillion"])
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


# --- chapter 2 diagrams ---


def data_parallel_diagram(n_devices: int = 2, strategies=None):
    """Who holds what under DDP, ZeRO-1/2 and ZeRO-3 (FSDP), and what they send each step.

    One row per strategy, one panel per device. In a panel, each part of the model states
    (16-bit weights, 16-bit gradients, fp32 optimizer states: master weights and Adam's two
    moments) is a bar cut into ``n_devices`` slices; a filled slice is stored on that device,
    an empty one lives on another device. Widths follow mixed-precision Adam's bytes per
    parameter (2, 2, 12). Returns the figure. Taught in book/02_memory.md.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    from course_lib.distributed import HOLDINGS, TRAFFIC, holdings

    strategies = list(HOLDINGS) if strategies is None else list(strategies)
    if not strategies:
        raise ValueError("data_parallel_diagram: strategies is empty")
    parts = [("weights", "weights (2 B)", 2, PALETTE["blue"]),
             ("gradients", "gradients (2 B)", 2, PALETTE["orange"]),
             ("optimizer", "optimizer states (12 B)", 12, PALETTE["green"])]
    grids = [holdings(s, n_devices) for s in strategies]  # validates both arguments
    fig, axes = plt.subplots(len(strategies), n_devices, squeeze=False,
                             figsize=(3.3 * n_devices + 1.6, 1.55 * len(strategies) + 0.6))
    total = sum(w for _, _, w, _ in parts)
    for row, (strategy, grid) in enumerate(zip(strategies, grids, strict=True)):
        for dev in range(n_devices):
            ax = axes[row][dev]
            ax.set_xlim(0, 1)
            ax.set_ylim(-0.2, len(parts))
            ax.axis("off")
            for k, (key, label, width, color) in enumerate(parts):
                y = len(parts) - 1 - k
                bar = width / total * 0.98 + 0.02 * (width == 2)
                for sl in range(n_devices):
                    held = sl in grid[key][dev]
                    x0 = sl * bar / n_devices
                    ax.add_patch(Rectangle((x0, y + 0.1), bar / n_devices, 0.7,
                                           facecolor=color if held else "white",
                                           edgecolor=color, lw=1.2, hatch=None if held else "//",
                                           alpha=1.0 if held else 0.5))
                if dev == 0:
                    ax.text(bar + 0.02, y + 0.45, label, va="center", fontsize=8)
            stored = sum(w * len(grid[key][dev]) / n_devices for key, _, w, _ in parts)
            ax.set_title(f"{strategy}: device {dev}  ({stored:g} B/param)", fontsize=9,
                         loc="left")
        axes[row][-1].text(1.0, -0.25, "sends: " + TRAFFIC.get(strategy, ""), fontsize=8,
                           ha="right", va="top", transform=axes[row][-1].transAxes,
                           style="italic")
    fig.suptitle(f"Data parallelism on {n_devices} devices: filled = stored here, "
                 "hatched = stored elsewhere", fontsize=10)
    fig.tight_layout()
    return fig


# --- chapter 3 diagrams ---
# Structures rather than results: how a number's bits are laid out, and how quantization maps
# real values onto an integer grid. Taught in book/03_quantization.md.

__all__ += ["BIT_FIELD_COLORS", "bit_layout", "quantization_grid"]

BIT_FIELD_COLORS: dict[str, str] = {
    "sign": PALETTE["vermillion"],
    "exponent": PALETTE["sky"],
    "mantissa": PALETTE["green"],
    "integer": PALETTE["orange"],
}


def bit_layout(rows, title: str | None = None, width: float = 11.0):
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
                ax.text(x + 0.5, y + 0.4, b, ha="center", va="center", fontsize=8)
                x += 1
            name = short[kind] if len(bits) > 3 or kind == "sign" else short[kind][:3] + "."
            ax.text(x - len(bits) / 2, y - 0.12, f"{len(bits)} {name}", ha="center",
                    va="top", fontsize=7, color="#444444")
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
        ax.text(g, -0.16, lab, ha="center", va="top", fontsize=8)
    zero_at = np.flatnonzero(grid == 0.0)
    if zero_at.size:
        ax.plot([0.0], [0.0], "s", color=PALETTE["vermillion"], ms=6, zorder=3,
                label="code for 0.0")
        ax.legend(loc="center right", fontsize=8)
    if source_range is not None:
        a, b = source_range
        ax.plot([a, a, b, b], [1.12, 1.2, 1.2, 1.12], color=PALETTE["orange"], lw=1.5)
        ax.text((a + b) / 2, 1.24, "source range", ha="center", va="bottom", fontsize=8,
                color=PALETTE["orange"])
    ax.text(lo - pad, 1.05, "real values", ha="left", va="bottom", fontsize=8)
    ax.text(lo - pad, -0.42, "integer codes", ha="left", va="top", fontsize=8)
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
    ax.legend(loc="upper right", fontsize=8)
    return ax


__all__ += ["levels_on_density"]


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


# ---------------------------------------------------------------- chapter 6 (inference)
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
