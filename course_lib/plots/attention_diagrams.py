"""Diagrams of chapter 4: memory levels, attention's kernels, the online softmax's rescaling,
head sharing in MHA/GQA/MQA, and the KV cache growing while a model decodes.

Every function returns a matplotlib Figure; none computes anything the chapter relies on
except ``online_softmax_steps``, which the chapter also asserts against
``course_lib.flash.online_softmax``. Taught in book/04_attention.md.
"""

from __future__ import annotations

import math
from numbers import Integral

from course_lib.plots.base import PALETTE

__all__ = ["memory_hierarchy", "attention_kernels", "online_softmax_steps",
           "online_softmax_rescaling", "head_sharing", "kv_cache_growth"]

_GREY = "#e6e6e6"


def _need_int(fn: str, name: str, value, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{fn}: {name} must be an int, got {value!r}")
    if value < low:
        raise ValueError(f"{fn}: {name} must be >= {low}, got {value}")
    return int(value)


def _box(ax, x, y, w, h, text, color, fontsize=11, text_color="black", **kw):
    from matplotlib.patches import FancyBboxPatch

    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.02,rounding_size=0.08",
                                facecolor=color, edgecolor="#555555", linewidth=1.0, **kw))
    if text:
        ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=fontsize,
                color=text_color)


def _arrow(ax, x0, y0, x1, y1, text="", color="#333333", fontsize=10, offset=(0.0, 0.0),
           lw=1.4, style="-|>"):
    ax.annotate("", xy=(x1, y1), xytext=(x0, y0),
                arrowprops=dict(arrowstyle=style, color=color, lw=lw, shrinkA=2, shrinkB=2))
    if text:
        ax.text((x0 + x1) / 2 + offset[0], (y0 + y1) / 2 + offset[1], text, fontsize=fontsize,
                ha="center", va="center", color=color)


def memory_hierarchy(hbm: str = "HBM: 40-80 GB, 1.5-2.0 TB/s",
                     sram: str = "SRAM: 192 KB per SM, ~19 TB/s",
                     compute: str = "tensor cores: 312 TFLOP/s (fp16)"):
    """Two memory levels of a GPU and the compute units, drawn to show size against speed.

    The HBM box is wide (large) and the path to it thin (slow); the SRAM box is narrow
    (small) and its path thick (fast). The labels carry the numbers, so the page passes in
    the figures it cites.
    """
    import matplotlib.pyplot as plt

    for name, value in (("hbm", hbm), ("sram", sram), ("compute", compute)):
        if not isinstance(value, str):
            raise TypeError(f"memory_hierarchy: {name} must be a str, got {value!r}")
    fig, ax = plt.subplots(figsize=(7.5, 3.8))
    _box(ax, 2.9, 3.0, 2.2, 0.8, "compute units", PALETTE["green"], text_color="white")
    _box(ax, 2.4, 1.7, 3.2, 0.8, "SRAM (on chip)", PALETTE["orange"])
    _box(ax, 0.2, 0.0, 7.6, 1.0, "HBM (main memory)", _GREY)
    _arrow(ax, 4.0, 2.5, 4.0, 3.0, lw=5, color=PALETTE["vermillion"],
           style="<|-|>,head_length=0.5,head_width=0.3")
    _arrow(ax, 4.0, 1.0, 4.0, 1.7, lw=1.0, style="<|-|>")
    ax.text(5.8, 3.4, compute, fontsize=10, va="center")
    ax.text(5.8, 2.1, sram + "\nsmall, fast", fontsize=10, va="center")
    ax.text(4.2, 1.35, "every kernel reads its inputs from HBM and writes its outputs back",
            fontsize=10, va="center")
    ax.text(4.0, -0.35, hbm + ": large, about 10× slower than SRAM", fontsize=10,
            ha="center", va="center")
    ax.set_xlim(0, 10.6)
    ax.set_ylim(-0.6, 4.0)
    ax.axis("off")
    fig.tight_layout()
    return fig


def attention_kernels():
    """Standard attention's three kernels against the fused one, with their HBM traffic.

    Top: kernel 1 reads Q, K and writes S; kernel 2 reads S and writes P; kernel 3 reads P, V
    and writes O. Every arrow is an HBM transfer; S and P are n x n. Bottom: one fused
    kernel reads Q, K, V tile by tile and writes only O.
    """
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8.5, 5.2),
                                      gridspec_kw={"height_ratios": [1.15, 1]})
    big, small = PALETTE["vermillion"], PALETTE["sky"]
    # standard: HBM row at the bottom of the panel, kernels above
    top.set_title("Standard attention: three kernels, n × n matrices through HBM",
                  fontsize=12)
    hbm_y = 0.0
    tensors = [("Q, K", 0.2, small), ("S", 2.6, big), ("P", 5.0, big), ("V", 6.6, small),
               ("O", 8.6, small)]
    _box(top, 0.0, hbm_y - 0.1, 9.8, 0.9, "", _GREY)
    top.text(-0.1, hbm_y + 0.35, "HBM", fontsize=10, ha="right", va="center")
    for name, x, color in tensors:
        _box(top, x, hbm_y, 1.0, 0.7, name, color, text_color="white" if color == big else
             "black")
    kernels = [("1: S = QKᵀ", 1.0, [0.7], [3.1]), ("2: P = softmax(S)", 3.6, [3.1], [5.5]),
               ("3: O = PV", 6.7, [5.5, 7.1], [9.1])]
    for text, x, reads, writes in kernels:
        _box(top, x, 1.7, 2.2, 0.7, text, PALETTE["green"], fontsize=10, text_color="white")
        for r in reads:
            _arrow(top, r, 0.7, x + 0.5, 1.7, color="#333333")
        for w in writes:
            _arrow(top, x + 1.7, 1.7, w, 0.7, color=big)
    top.text(4.9, 2.75, "reads in black, writes in red: S written, read, P written, read",
             fontsize=10, ha="center")
    top.set_xlim(-0.9, 10.2)
    top.set_ylim(-0.3, 3.0)
    top.axis("off")

    bottom.set_title("Fused (FlashAttention): one kernel, tiles stay in SRAM", fontsize=12)
    _box(bottom, 0.0, -0.1, 9.8, 0.9, "", _GREY)
    bottom.text(-0.1, 0.35, "HBM", fontsize=10, ha="right", va="center")
    for name, x in (("Q", 0.4), ("K", 1.8), ("V", 3.2), ("O", 8.6)):
        _box(bottom, x, 0.0, 1.0, 0.7, name, small)
    _box(bottom, 2.2, 1.5, 5.6, 0.9, "S tile → softmax (online) → P tile → O tile",
         PALETTE["orange"], fontsize=10)
    bottom.text(5.0, 2.6, "one kernel, in SRAM", fontsize=10, ha="center")
    for r in (0.9, 2.3, 3.7):
        _arrow(bottom, r, 0.7, 3.0 + (r - 0.9) * 0.4, 1.5)
    _arrow(bottom, 7.3, 1.5, 9.1, 0.7, color=big)
    bottom.text(4.9, -0.55, "no n × n matrix is ever written to HBM", fontsize=10,
                ha="center")
    bottom.set_xlim(-0.9, 10.2)
    bottom.set_ylim(-0.8, 2.9)
    bottom.axis("off")
    fig.tight_layout()
    return fig


def online_softmax_steps(x, tile: int) -> list[dict]:
    """The running (m, s) of a 1-D online softmax after each tile, in plain Python floats.

    Each step is a dict with the tile's values, its max, the running max before and after,
    the rescale factor exp(m_old - m_new) applied to the old sum, and the new sum.
    """
    values = [float(v) for v in x]
    tile = _need_int("online_softmax_steps", "tile", tile)
    if not values:
        raise ValueError("online_softmax_steps: x is empty")
    if any(math.isnan(v) or v == math.inf for v in values):
        raise ValueError("online_softmax_steps: x must not contain NaN or +inf")
    m, s, steps = -math.inf, 0.0, []
    for start in range(0, len(values), tile):
        chunk = values[start:start + tile]
        m_new = max(m, max(chunk))
        factor = 1.0 if m_new == m else math.exp(m - m_new)
        s_new = s * factor + sum(math.exp(v - m_new) for v in chunk)
        steps.append({"values": chunk, "tile_max": max(chunk), "m_old": m, "m": m_new,
                      "factor": factor, "s": s_new})
        m, s = m_new, s_new
    return steps


def online_softmax_rescaling(x, tile: int):
    """A vector split into tiles; under each tile the running max m, the factor
    exp(m_old - m_new) that rescales the old sum (highlighted where the max grew) and the
    running sum s after the tile."""
    import matplotlib.pyplot as plt

    steps = online_softmax_steps(x, tile)
    values = [v for st in steps for v in st["values"]]
    n = len(values)
    fig, ax = plt.subplots(figsize=(min(9.0, 1.2 + 0.75 * n), 3.6))
    colors = [PALETTE["sky"], PALETTE["orange"]]
    pos = 0
    for t, st in enumerate(steps):
        width = len(st["values"])
        for k, v in enumerate(st["values"]):
            _box(ax, pos + k + 0.05, 3.0, 0.9, 0.8, f"{v:g}", colors[t % 2], fontsize=11)
        mid = pos + width / 2
        ax.text(mid, 4.1, f"tile {t + 1}", ha="center", fontsize=10)
        grew = t > 0 and st["factor"] < 1
        ax.text(mid, 2.35, f"m = {st['m']:g}", ha="center", fontsize=11)
        factor = "—" if t == 0 else f"{st['factor']:.3f}"
        ax.text(mid, 1.6, f"× {factor}", ha="center", fontsize=11,
                color=PALETTE["vermillion"] if grew else "#555555",
                fontweight="bold" if grew else "normal")
        ax.text(mid, 0.85, f"s = {st['s']:.3f}", ha="center", fontsize=11)
        if t:
            ax.axvline(pos, ymin=0.05, ymax=0.95, color="#999999", lw=0.8, ls=":")
        pos += width
    for y, label in ((2.35, "running max"), (1.6, "old s times"), (0.85, "running sum")):
        ax.text(-0.15, y, label, ha="right", fontsize=10, va="center")
    ax.text(n / 2, 0.1, "red: the max grew, so the old sum is multiplied by "
            "exp(m_old − m_new) < 1", ha="center", fontsize=10, color=PALETTE["vermillion"])
    ax.set_xlim(-2.2, n + 0.1)
    ax.set_ylim(-0.2, 4.4)
    ax.axis("off")
    fig.tight_layout()
    return fig


def head_sharing(n_heads: int = 8, kv_heads=(8, 2, 1)):
    """Which query heads read which key/value head: one panel per number of KV heads
    (MHA when it equals n_heads, MQA when it is 1, GQA in between), query heads on top,
    K/V heads below, each group in its own colour."""
    import matplotlib.pyplot as plt

    n_heads = _need_int("head_sharing", "n_heads", n_heads)
    kv_heads = [_need_int("head_sharing", "kv_heads", h) for h in kv_heads]
    if not kv_heads:
        raise ValueError("head_sharing: kv_heads is empty")
    for h in kv_heads:
        if n_heads % h:
            raise ValueError(f"head_sharing: kv_heads {h} must divide n_heads={n_heads}")
    names = ("blue", "orange", "green", "vermillion", "sky", "purple", "yellow")
    colors = [PALETTE[c] for c in names] + ["#888888"]
    ink = {PALETTE[c]: "black" for c in ("orange", "sky", "purple", "yellow")}
    fig, axes = plt.subplots(1, len(kv_heads), figsize=(min(9.0, 3.0 * len(kv_heads)), 3.4))
    axes = [axes] if len(kv_heads) == 1 else list(axes)
    for ax, n_kv in zip(axes, kv_heads):
        group = n_heads // n_kv
        kind = "MHA" if n_kv == n_heads else "MQA" if n_kv == 1 else f"GQA-{n_kv}"
        ax.set_title(f"{kind}: {n_kv} K/V head{'s' if n_kv > 1 else ''}", fontsize=12)
        for h in range(n_heads):
            g = h // group
            c = colors[g % len(colors)]
            _box(ax, h + 0.1, 2.0, 0.8, 0.7, f"q{h}", c, fontsize=9,
                 text_color=ink.get(c, "white"))
            kx = (g * group + group / 2) / 1.0
            ax.plot([h + 0.5, kx], [2.0, 0.95], color=c, lw=1.3)
        for g in range(n_kv):
            c = colors[g % len(colors)]
            x0 = g * group + group / 2 - 0.45
            _box(ax, x0, 0.2, 0.9, 0.75, f"kv{g}", c, fontsize=9,
                 text_color=ink.get(c, "white"))
        ax.text(n_heads / 2, -0.25, f"{group} query head{'s' if group > 1 else ''} per K/V "
                "head", ha="center", fontsize=10)
        ax.set_xlim(-0.1, n_heads + 0.1)
        ax.set_ylim(-0.5, 2.9)
        ax.axis("off")
    axes[0].text(-0.05, 2.35, "query\nheads", ha="right", va="center", fontsize=9)
    axes[0].text(-0.05, 0.57, "K/V\nheads", ha="right", va="center", fontsize=9)
    fig.tight_layout()
    return fig


def kv_cache_growth(prompt_len: int = 4, steps: int = 3):
    """The KV cache of one layer over decode steps: after the prompt it holds one K and one V
    column per token; each step appends one new column to each (highlighted) and the new
    token's query reads them all."""
    import matplotlib.pyplot as plt

    prompt_len = _need_int("kv_cache_growth", "prompt_len", prompt_len)
    steps = _need_int("kv_cache_growth", "steps", steps)
    total = prompt_len + steps
    fig, axes = plt.subplots(steps + 1, 1, figsize=(7.5, 1.15 * (steps + 1) + 0.5),
                             squeeze=False)
    for s, ax in enumerate(axes[:, 0]):
        n = prompt_len + s
        label = "after the prompt" if s == 0 else f"decode step {s}"
        ax.text(-0.7, 0.9, label, ha="right", va="center", fontsize=10)
        for row, name in ((1.1, "K"), (0.2, "V")):
            ax.text(0.0, row + 0.3, name, ha="right", va="center", fontsize=10)
            for t in range(total):
                if t < n:
                    new = s > 0 and t == n - 1
                    color = PALETTE["vermillion"] if new else PALETTE["sky"]
                    _box(ax, 0.2 + t, row, 0.8, 0.6, "", color)
                else:
                    _box(ax, 0.2 + t, row, 0.8, 0.6, "", "white", linestyle=":")
        if s:
            ax.text(total + 0.5, 0.9, f"query of token {n} reads {n} K and {n} V",
                    va="center", fontsize=10)
        else:
            ax.text(total + 0.5, 0.9, f"{n} tokens cached", va="center", fontsize=10)
        ax.set_xlim(-4.0, total + 6.8)
        ax.set_ylim(0.0, 1.9)
        ax.axis("off")
    fig.text(0.5, 0.02, "one layer; every layer holds its own K and V, one column per token "
             "(red: appended this step)", ha="center", fontsize=10)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return fig
