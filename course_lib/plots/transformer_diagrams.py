"""Diagrams of chapter 1's mechanics: attention's data flow, the multi-head split, and the
one-token shift between a model's inputs and its targets.

Taught in book/01_transformer.md (sections 3 and 5). Drawn with the box and arrow helpers of
`course_lib.plots.architecture`, so the colours match the chapter's other structure diagrams:
grey for data, yellow for attention, pink for projections.
"""

from __future__ import annotations

from course_lib.plots.architecture import _arrow, _box, _canvas
from course_lib.plots.base import PALETTE

__all__ = ["qkv_diagram", "multihead_diagram", "shift_diagram"]


def qkv_diagram(n_tokens: int = 4, d_model: int = 8, d_k: int = 8):
    """Self-attention as a data flow, left to right: the token vectors x go through the three
    learned matrices W_Q, W_K, W_V; the queries and keys make the scores QK^T / sqrt(d_k), one
    row per query; the softmax turns each row into weights; the weights average the values V.
    The shapes under the boxes are (rows, columns) for n_tokens tokens. Returns the Figure."""
    for name, v in (("n_tokens", n_tokens), ("d_model", d_model), ("d_k", d_k)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"qkv_diagram: {name} must be an int >= 1, got {v!r}")
    n = n_tokens
    fig, ax = _canvas(18.4, 6.4, (9.0, 3.13))
    fs = 10
    _box(ax, 1.1, 3.2, 1.6, 1.0, "$x$", "embed", fontsize=12)
    ax.text(1.1, 2.45, f"{n} × {d_model}", ha="center", va="top", fontsize=fs)
    rows = {"Q": 5.2, "K": 3.2, "V": 1.2}
    for name, y in rows.items():
        _arrow(ax, (1.95, 3.2), (3.45, y), connection="arc3,rad=0")
        _box(ax, 4.3, y, 1.6, 0.9, f"$W_{name}$", "head", fontsize=12)
        _arrow(ax, (5.15, y), (6.05, y))
        _box(ax, 6.8, y, 1.3, 0.9, f"${name}$", "data", fontsize=12)
        ax.text(6.8, y - 0.55, f"{n} × {d_k}", ha="center", va="top", fontsize=fs)
    # queries and keys meet in the score matrix
    _arrow(ax, (7.5, 5.2), (8.55, 4.45), connection="arc3,rad=0")
    _arrow(ax, (7.5, 3.2), (8.55, 3.95), connection="arc3,rad=0")
    _box(ax, 9.75, 4.2, 2.3, 1.1, "scores\n$QK^\\top / \\sqrt{d_k}$", "attn", fontsize=fs)
    ax.text(9.7, 3.55, f"{n} × {n}", ha="center", va="top", fontsize=fs)
    _arrow(ax, (10.95, 4.2), (11.65, 4.2))
    _box(ax, 12.85, 4.2, 2.3, 1.1, "softmax\nof each row", "attn", fontsize=fs)
    ax.text(12.85, 3.55, f"{n} × {n}, rows sum to 1", ha="center", va="top", fontsize=fs)
    # the weights average the values
    _arrow(ax, (13.3, 3.1), (14.9, 1.8), connection="arc3,rad=0")
    _arrow(ax, (7.5, 1.2), (14.05, 1.2))
    ax.text(10.4, 1.3, "values", ha="center", va="bottom", fontsize=fs, color="0.3")
    _box(ax, 15.4, 1.2, 2.6, 1.1, "weighted sum\nweights @ $V$", "attn", fontsize=fs)
    _arrow(ax, (16.75, 1.2), (17.35, 1.2))
    ax.text(17.45, 1.2, "out", ha="left", va="center", fontsize=fs)
    ax.text(15.4, 0.5, f"{n} × {d_k}", ha="center", va="top", fontsize=fs)
    ax.text(4.3, 6.2, "learned", ha="center", va="center", fontsize=fs, color="0.3")
    return fig


def multihead_diagram(n_heads: int = 4, d_model: int = 16):
    """Multi-head attention as a split and a concatenation: the d_model numbers of each
    projected token are cut into n_heads slices of d_model / n_heads, every head attends on its
    own slice, the heads' outputs are laid side by side again (concatenated) and mixed by the
    output projection W_O. Returns the Figure."""
    for name, v in (("n_heads", n_heads), ("d_model", d_model)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"multihead_diagram: {name} must be an int >= 1, got {v!r}")
    if d_model % n_heads:
        raise ValueError(f"multihead_diagram: n_heads={n_heads} must divide "
                         f"d_model={d_model}")
    if n_heads > 8:
        raise ValueError(f"multihead_diagram: draws at most 8 heads, got n_heads={n_heads}")
    from matplotlib.patches import Rectangle

    hd = d_model // n_heads
    colours = [PALETTE[c] for c in ("blue", "orange", "green", "vermillion", "sky", "purple",
                                    "yellow", "black")]
    fig, ax = _canvas(16.0, 7.0, (9.0, 3.9))
    fs = 10
    width = 6.0                                    # a vector of d_model numbers, drawn wide
    x0, slice_w = 5.0, width / n_heads

    def bar(y, label):
        for h in range(n_heads):
            ax.add_patch(Rectangle((x0 + h * slice_w, y), slice_w, 0.5, facecolor=colours[h],
                                   alpha=0.55, edgecolor="0.2", lw=1.0))
        ax.text(x0 - 0.2, y + 0.25, label, ha="right", va="center", fontsize=fs)

    bar(6.0, f"$xW_Q$, $xW_K$, $xW_V$: {d_model} numbers per token")
    ax.text(x0 + width + 0.2, 6.25, f"split: {n_heads} heads × {hd}", ha="left",
            va="center", fontsize=fs)
    y_head = 3.9
    for h in range(n_heads):
        xc = x0 + (h + 0.5) * slice_w
        _arrow(ax, (xc, 5.95), (xc, y_head + 0.5))
        ax.add_patch(Rectangle((xc - slice_w / 2 + 0.08, y_head - 0.45), slice_w - 0.16, 0.9,
                               facecolor="#FBE3B5", edgecolor=colours[h], lw=2.0))
        ax.text(xc, y_head, f"head {h}\nattends", ha="center", va="center", fontsize=fs)
        _arrow(ax, (xc, y_head - 0.5), (xc, 2.55))
    bar(2.0, f"concatenate: {d_model} numbers again")
    _arrow(ax, (x0 + width / 2, 1.95), (x0 + width / 2, 1.25))
    _box(ax, x0 + width / 2, 0.85, 2.0, 0.7, "$W_O$", "head", fontsize=12)
    _arrow(ax, (x0 + width / 2 + 1.05, 0.85), (x0 + width / 2 + 2.0, 0.85))
    ax.text(x0 + width / 2 + 2.1, 0.85, f"output: {d_model} numbers", ha="left", va="center",
            fontsize=fs)
    ax.text(x0 + width + 0.2, y_head, f"each on its own {hd}-number\nslice of Q, K and V",
            ha="left", va="center", fontsize=fs, color="0.3")
    return fig


def shift_diagram(tokens, n_pad: int = 2):
    """The next-token targets as a token strip: the inputs are the text's tokens but the last,
    the targets the same tokens moved one place left (position t is scored on token t + 1);
    n_pad padding positions at the end of the row have no target, written -100 (ignored by
    the loss). `tokens` is the list of the text's token strings. Returns the Figure."""
    tokens = [str(t) for t in tokens]
    if len(tokens) < 2:
        raise ValueError(f"shift_diagram: tokens needs at least 2 entries, got {len(tokens)}")
    if isinstance(n_pad, bool) or not isinstance(n_pad, int) or n_pad < 0:
        raise ValueError(f"shift_diagram: n_pad must be an int >= 0, got {n_pad!r}")
    if len(tokens) - 1 + n_pad > 10:
        raise ValueError("shift_diagram: at most 10 positions fit the page "
                         f"(len(tokens) - 1 + n_pad = {len(tokens) - 1 + n_pad})")
    text = tokens + ["<pad>"] * n_pad
    n = len(text) - 1                               # positions the model is run on
    n_real = len(tokens) - 1                        # positions with a real target
    cell, x_left = 1.3, 2.3
    width = x_left + (n + 1) * cell + 0.2
    fig, ax = _canvas(width, 6.2, (9.0, 9.0 * 6.2 / width))
    fs = 10
    y_in, y_text, y_out = 5.0, 3.1, 1.0
    ax.text(x_left - 0.25, y_in + 0.6, "position", ha="right", va="center", fontsize=9,
            color="0.4")
    for y, label in ((y_text, "the text"), (y_in, "input x"), (y_out, "target y")):
        ax.text(x_left - 0.25, y, label, ha="right", va="center", fontsize=fs)

    def xc(t):
        return x_left + (t + 0.5) * cell

    for t, tok in enumerate(text):
        _box(ax, xc(t), y_text, cell - 0.2, 0.7, tok.replace(" ", "␣"),
             "data" if t < len(tokens) else "norm", fontsize=fs)
    for t in range(n):
        _box(ax, xc(t), y_in, cell - 0.2, 0.7, text[t].replace(" ", "␣"),
             "data" if t < len(tokens) else "norm", fontsize=fs)
        ax.text(xc(t), y_in + 0.45, f"{t}", ha="center", va="bottom", fontsize=9,
                color="0.4")
        _arrow(ax, (xc(t), y_text + 0.38), (xc(t), y_in - 0.38), color="0.55")
        real = t < n_real
        _box(ax, xc(t), y_out, cell - 0.2, 0.7,
             text[t + 1].replace(" ", "␣") if real else "-100",
             "data" if real else "norm", fontsize=fs)
        if real:            # the target of position t is the text's token t + 1
            _arrow(ax, (xc(t + 1) - 0.15, y_text - 0.38), (xc(t) + 0.2, y_out + 0.38),
                   color=PALETTE["blue"], connection="arc3,rad=0")
    ax.text(x_left, y_out - 0.5, "target at t = the token at t + 1", ha="left", va="top",
            fontsize=fs, color=PALETTE["blue"])
    if n_pad:
        ax.text(xc(n_real + (n - n_real - 1) / 2), y_out - 0.5, "no target: ignored",
                ha="center", va="top", fontsize=fs, color=PALETTE["vermillion"])
    return fig
