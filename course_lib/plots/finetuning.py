"""Diagrams of chapter 5: which tokens train, LoRA's two thin matrices, the memory of each
fine-tuning method, QLoRA's data flow, and adapters swapped over one shared base."""

from __future__ import annotations

from collections.abc import Sequence

from course_lib.plots.base import PALETTE

__all__ = ['token_strip', 'lora_diagram', 'memory_bars', 'qlora_flow', 'adapter_swap']


def token_strip(ax, tokens: Sequence[str], trained: Sequence[bool], title: str = "",
                fontsize: float = 9) -> None:
    """Tokens as a row of boxes; the ones a loss is computed on are filled.

    Taught in book/05_finetuning.md (the loss on the response only against on everything).
    """
    from matplotlib.patches import Rectangle

    if len(tokens) != len(trained):
        raise ValueError(f"token_strip: {len(tokens)} tokens but {len(trained)} flags")
    x = 0.0
    for text, on in zip(tokens, trained):
        width = max(0.6, 0.15 * fontsize / 9 * len(text) + 0.3)
        ax.add_patch(Rectangle((x, 0), width - 0.05, 1, facecolor=PALETTE["orange"] if on
                               else "#eeeeee", edgecolor="#555555", linewidth=0.6))
        ax.text(x + (width - 0.05) / 2, 0.5, text, ha="center", va="center",
                fontsize=fontsize)
        x += width
    ax.set_xlim(-0.1, x + 0.1)
    ax.set_ylim(-0.2, 1.2)
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=max(10, fontsize), loc="left")


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


MEMORY_PARTS = ("weights", "gradients", "optimizer", "activations")


def memory_bars(parts: dict, peaks: dict | None = None, unit: int = 2**20):
    """Stacked bars, one per method: the bytes of its weights, gradients, optimizer state and
    saved activations (``parts[method][part]``, as chapter 2's tensor meter gives them), in
    ``unit`` (MiB by default); ``peaks[method]``, if given, is drawn as a tick (the profiler's
    peak of the step, on top of the weights). Taught in book/05_finetuning.md."""
    import matplotlib.pyplot as plt

    if not isinstance(parts, dict) or not parts:
        raise ValueError("memory_bars: parts must be a non-empty dict {method: {part: bytes}}")
    for method, p in parts.items():
        if not isinstance(p, dict) or not set(MEMORY_PARTS) <= set(p):
            raise ValueError(f"memory_bars: parts[{method!r}] must have {MEMORY_PARTS}")
    if peaks is not None and set(peaks) != set(parts):
        raise ValueError("memory_bars: peaks must name the same methods as parts")
    fig, ax = plt.subplots(figsize=(8, 4.2))
    colours = [PALETTE["blue"], PALETTE["orange"], PALETTE["vermillion"], PALETTE["sky"]]
    labels = {"weights": "weights", "gradients": "gradients", "optimizer": "optimizer state",
              "activations": "saved activations"}
    methods = list(parts)
    bottom = [0.0] * len(methods)
    for part, colour in zip(MEMORY_PARTS, colours):
        heights = [parts[m][part] / unit for m in methods]
        ax.bar(methods, heights, bottom=bottom, color=colour, label=labels[part], width=0.6)
        bottom = [b + h for b, h in zip(bottom, heights)]
    if peaks is not None:
        xs = range(len(methods))
        ys = [(parts[m]["weights"] + peaks[m]) / unit for m in methods]
        ax.scatter(xs, ys, marker="_", s=900, color=PALETTE["black"], linewidths=2.5, zorder=3,
                   label="weights + measured peak")
    ax.set_ylabel("MiB" if unit == 2**20 else f"units of {unit:,} bytes")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig


def _box(ax, x, y, w, h, text, colour, fontsize=10, dashed=False):
    from matplotlib.patches import FancyBboxPatch

    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.02,rounding_size=0.08",
                                facecolor=colour, edgecolor="#333333", linewidth=1.0,
                                alpha=0.9, linestyle="--" if dashed else "-"))
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=fontsize)


def _arrow(ax, start, end, colour="#333333", dashed=False, text=None, fontsize=9):
    ax.annotate("", xy=end, xytext=start,
                arrowprops={"arrowstyle": "-|>", "lw": 1.5, "color": colour,
                            "ls": "--" if dashed else "-", "shrinkA": 0, "shrinkB": 0})
    if text:
        ax.text((start[0] + end[0]) / 2, (start[1] + end[1]) / 2 + 0.12, text, ha="center",
                va="bottom", fontsize=fontsize, color=colour)


def qlora_flow():
    """QLoRA's data flow in one layer: the frozen NF4 weight is dequantized to 16 bits block by
    block for the matrix product, the 16-bit adapter B A adds its term, and the gradient (dashed,
    backward) flows through the frozen path to the layer's input and into A and B only, never
    into the 4-bit weight. Taught in book/05_finetuning.md."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.4))
    grey, light = "#dddddd", "#f3f3f3"
    orange, sky = PALETTE["orange"], PALETTE["sky"]
    _box(ax, 0.0, 2.0, 1.2, 0.8, "input x\n(16-bit)", light)
    _box(ax, 1.9, 3.4, 2.0, 0.9, "W in NF4\n4 bits, frozen", grey)
    _box(ax, 1.9, 2.0, 2.0, 0.8, "dequantize\nblock by block", light)
    _box(ax, 4.6, 2.0, 1.5, 0.8, "W x\n16-bit product", light)
    _box(ax, 1.7, 0.3, 1.15, 0.8, "A\nr × d_in", sky)
    _box(ax, 3.1, 0.3, 1.25, 0.8, "B\nd_out × r", orange)
    _box(ax, 4.6, 0.3, 1.5, 0.8, "(α / r) B A x", light)
    _box(ax, 6.9, 1.15, 0.7, 0.8, "+", light, fontsize=14)
    _box(ax, 8.3, 1.15, 0.9, 0.8, "y", light)
    _arrow(ax, (2.9, 3.4), (2.9, 2.8))              # NF4 -> dequantize
    _arrow(ax, (1.2, 2.4), (1.9, 2.4))              # x -> dequantize/matmul
    _arrow(ax, (3.9, 2.4), (4.6, 2.4))
    _arrow(ax, (0.6, 2.0), (0.6, 0.7))
    _arrow(ax, (0.6, 0.7), (1.7, 0.7))              # x -> A
    _arrow(ax, (2.85, 0.7), (3.1, 0.7))
    _arrow(ax, (4.35, 0.7), (4.6, 0.7))
    _arrow(ax, (6.1, 2.4), (6.9, 1.75))
    _arrow(ax, (6.1, 0.7), (6.9, 1.35))
    _arrow(ax, (7.6, 1.55), (8.3, 1.55))
    red = PALETTE["vermillion"]
    _arrow(ax, (8.75, 3.0), (8.75, 1.95), red, dashed=True)
    ax.text(8.75, 3.1, "backward:\ngradient of\nthe loss", ha="center", va="bottom",
            fontsize=9, color=red)
    _arrow(ax, (7.0, 0.15), (3.5, 0.15), red, dashed=True)
    ax.text(5.3, -0.35, "into A and B: trained (16-bit, with Adam state)", ha="center",
            fontsize=9, color=red)
    _arrow(ax, (4.6, 2.95), (1.2, 2.95), red, dashed=True)
    ax.text(0.6, 3.15, "to x: earlier\nlayers get it", ha="center", va="bottom", fontsize=9,
            color=red)
    ax.text(4.2, 3.95, "no gradient\ninto W", ha="left", va="center", fontsize=9, color=red)
    ax.set_xlim(-0.2, 9.4)
    ax.set_ylim(-0.6, 4.5)
    ax.axis("off")
    return fig


def adapter_swap(tasks: Sequence[str], base_kib: float, adapter_kib: Sequence[float],
                 active: int = 0):
    """One frozen base model in memory and one small A/B adapter per task; the adapter of the
    request being served (``active``) is loaded into the base, the others wait as small files.
    Sizes in KiB label the boxes. Taught in book/05_finetuning.md."""
    import matplotlib.pyplot as plt

    tasks = [str(t) for t in tasks]
    if not tasks or len(tasks) != len(adapter_kib):
        raise ValueError(f"adapter_swap: need one size per task, got {len(tasks)} tasks and "
                         f"{len(adapter_kib)} sizes")
    if isinstance(active, bool) or not isinstance(active, int) or not 0 <= active < len(tasks):
        raise ValueError(f"adapter_swap: active must be a task index, got {active!r}")
    n = len(tasks)
    fig, ax = plt.subplots(figsize=(8, 3.8))
    width = 2.2 * n
    _box(ax, 0, 0, width, 1.1, f"shared base model, frozen: {base_kib:,.0f} KiB\n"
         "(loaded once)", "#dddddd", fontsize=11)
    colours = [PALETTE["orange"], PALETTE["sky"], PALETTE["green"], PALETTE["purple"]]
    for i, (task, kib) in enumerate(zip(tasks, adapter_kib)):
        x = 0.25 + 2.2 * i
        on = i == active
        _box(ax, x, 2.0, 1.7, 0.9, f"A, B for\n{task}\n{kib:,.0f} KiB",
             colours[i % len(colours)] if on else "#f7f7f7", fontsize=10, dashed=not on)
        _arrow(ax, (x + 0.85, 2.0), (x + 0.85, 1.1), dashed=not on,
               colour="#333333" if on else "#999999")
        ax.text(x + 0.85, 3.05, "serving now" if on else "swap in: copy A, B",
                ha="center", va="bottom", fontsize=9)
    ax.set_xlim(-0.2, width + 0.2)
    ax.set_ylim(-0.2, 3.6)
    ax.axis("off")
    return fig
