"""Diagrams of chapter 5: which tokens train, and LoRA's two thin matrices."""

from __future__ import annotations

from collections.abc import Sequence

from course_lib.plots.base import PALETTE

__all__ = ['token_strip', 'lora_diagram']

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
