"""Diagrams of page 5b: the RLHF and DPO pipelines, the reward head reading the last token,
and the proxy and gold rewards of an RL run against its training step.

Taught in book/05b_alignment.md. The diagrams are plain matplotlib patches and arrows; the
curves take the numbers the page has already measured (nothing is computed here).
"""

from __future__ import annotations

from collections.abc import Sequence

from course_lib.plots.base import PALETTE

__all__ = ["pipelines", "reward_head", "reward_curves"]

_FILL = {"data": "#E8E8E8", "model": "#CFE6F5", "train": "#FBE3B5", "out": "#CDEBDD"}


def _box(ax, x, y, w, h, text, kind="data", fontsize=10):
    from matplotlib.patches import FancyBboxPatch

    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h,
                                boxstyle="round,pad=0.02,rounding_size=0.08",
                                facecolor=_FILL[kind], edgecolor="0.2", lw=1.2, zorder=2))
    ax.text(x, y, text, ha="center", va="center", fontsize=fontsize, zorder=3)


def _arrow(ax, start, end, text=None, style="-|>", color="0.15", fontsize=9, ls="-"):
    ax.annotate("", xy=end, xytext=start, zorder=4,
                arrowprops={"arrowstyle": style, "color": color, "lw": 1.4, "ls": ls,
                            "shrinkA": 0, "shrinkB": 0})
    if text:
        ax.text((start[0] + end[0]) / 2, (start[1] + end[1]) / 2 + 0.08, text,
                fontsize=fontsize, ha="center", va="bottom", color=color, zorder=5)


def pipelines():
    """RLHF and DPO side by side, as two rows of boxes: what each trains, and on what.

    RLHF: preference pairs -> a reward model -> RL on the policy's own samples with a KL
    penalty against the frozen reference -> the policy. DPO: the same pairs and the same
    reference -> one classification-like loss on the pairs -> the policy.
    """
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9.0, 4.4))
    ax.set_xlim(0, 12)
    ax.set_ylim(0, 6.2)
    ax.axis("off")
    w, h = 2.5, 1.05
    # RLHF, top row
    ax.text(0.05, 5.9, "RLHF: two trainings", fontsize=11, fontweight="bold", va="center")
    y = 4.7
    _box(ax, 1.35, y, w, h, "preference\npairs\n(x, chosen, rejected)", "data")
    _box(ax, 4.45, y, w, h, "reward model\n$r(x, y)$\nBradley-Terry loss", "train")
    _box(ax, 7.75, y, w + 0.4, h, "RL on own samples:\nreward $-\\ \\beta\\,$KL\n(REINFORCE, PPO)",
         "train")
    _box(ax, 10.85, y, 1.9, h, "policy\n$\\pi$", "out")
    _arrow(ax, (2.6, y), (3.2, y))
    _arrow(ax, (5.7, y), (6.35, y))
    _arrow(ax, (9.15, y), (9.9, y))
    _box(ax, 7.75, 3.05, w, 0.8, "reference $\\pi_{ref}$\n(frozen start model)", "model")
    _arrow(ax, (7.75, 3.45), (7.75, y - h / 2), ls="--")
    ax.text(7.9, 3.75, "KL penalty", fontsize=9, color="0.15", va="center")
    # DPO, bottom row
    ax.text(0.05, 1.95, "DPO: one training", fontsize=11, fontweight="bold", va="center")
    y = 0.85
    _box(ax, 1.35, y, w, h, "preference\npairs\n(x, chosen, rejected)", "data")
    _box(ax, 6.1, y, 4.2, h, "DPO loss: a classification\non the pairs, with $\\pi$ relative\n"
         "to $\\pi_{ref}$ (no reward model)", "train")
    _box(ax, 10.85, y, 1.9, h, "policy\n$\\pi$", "out")
    _arrow(ax, (2.6, y), (4.0, y))
    _arrow(ax, (8.2, y), (9.9, y))
    _arrow(ax, (7.0, 2.65), (6.4, y + h / 2), ls="--")
    ax.text(6.85, 1.95, "log-probs", fontsize=9, color="0.15", va="center")
    return fig


def reward_head(tokens: Sequence[str], n_pad: int = 2, value: float | None = None):
    """A reward model reading one answer: token boxes (drawn without their leading space),
    right padding after them, a hidden state above each token, and an arrow from the last
    real token's state through a linear head to one number. ``value`` is printed as the
    reward when given."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    tokens = [str(t) for t in tokens]
    if not tokens:
        raise ValueError("reward_head: tokens must not be empty")
    if isinstance(n_pad, bool) or not isinstance(n_pad, int) or n_pad < 0:
        raise ValueError(f"reward_head: n_pad must be an int >= 0, got {n_pad!r}")
    n = len(tokens) + n_pad
    fig, ax = plt.subplots(figsize=(9.0, 3.4))
    ax.set_xlim(-0.2, n + 2.9)
    ax.set_ylim(-0.55, 3.4)
    ax.axis("off")
    last = len(tokens) - 1
    for i in range(n):
        real = i < len(tokens)
        ax.add_patch(Rectangle((i + 0.05, 0), 0.9, 0.7, facecolor="#E8E8E8" if real else "white",
                               edgecolor="0.3", lw=1.0, ls="-" if real else ":"))
        ax.text(i + 0.5, 0.35, (tokens[i].strip() or tokens[i]) if real else "pad",
                ha="center", va="center",
                fontsize=9, color="0.1" if real else "0.5")
        ax.add_patch(Rectangle((i + 0.2, 1.35), 0.6, 0.6, lw=1.0, edgecolor="0.3",
                               facecolor=PALETTE["orange"] if i == last
                               else ("#CFE6F5" if real else "white"),
                               ls="-" if real else ":"))
        _arrow(ax, (i + 0.5, 0.72), (i + 0.5, 1.33), color="0.3" if real else "0.7")
    ax.text(-0.1, 2.15, "hidden states $h_t$ (causal: $h_t$ sees tokens $\\leq t$)",
            fontsize=10, va="bottom")
    ax.text(-0.1, -0.15, "the whole answer, right-padded", fontsize=10, va="top")
    top = 2.85
    _box(ax, n + 1.45, top, 2.3, 0.75, "linear head\n$w^\\top h + b$", "train")
    ax.plot([last + 0.5, last + 0.5], [1.97, top], color="0.15", lw=1.4, zorder=4)
    _arrow(ax, (last + 0.5, top), (n + 0.28, top))
    ax.text((last + n) / 2 + 0.4, top + 0.08, "last real token", fontsize=9, ha="center",
            va="bottom")
    reward = "reward $r$" if value is None else f"reward $r$ = {value:.2f}"
    ax.text(n + 1.45, 1.95, reward, ha="center", va="top", fontsize=10, fontweight="bold")
    _arrow(ax, (n + 1.45, top - 0.4), (n + 1.45, 2.0))
    if n_pad:
        ax.text(len(tokens) + n_pad / 2, 2.05, "never read", ha="center", va="bottom",
                fontsize=9, color="0.45")
    return fig


def reward_curves(steps: Sequence[int], proxy: Sequence[float], gold: Sequence[float],
                  best: int, n_prompts: int | None = None):
    """Proxy reward (reward-model score) and gold reward (%) of an RL run against its
    training step, on two y-axes, with the chosen checkpoint ``best`` (an index into
    ``steps``) marked."""
    import matplotlib.pyplot as plt

    steps, proxy, gold = list(steps), [float(v) for v in proxy], [float(v) for v in gold]
    if not steps or not len(steps) == len(proxy) == len(gold):
        raise ValueError(f"reward_curves: steps, proxy and gold must have one equal, non-zero "
                         f"length, got {len(steps)}, {len(proxy)}, {len(gold)}")
    if isinstance(best, bool) or not isinstance(best, int) or not 0 <= best < len(steps):
        raise ValueError(f"reward_curves: best must be an index into steps, got {best!r}")
    fig, ax = plt.subplots(figsize=(8.0, 4.4))
    ax.plot(steps, gold, "o-", color=PALETTE["blue"], label="gold reward (%)")
    ax.set_xlabel("RL step")
    ax.set_ylabel("gold: happy, well-formed (%)", color=PALETTE["blue"])
    ax.set_ylim(0, 100)
    right = ax.twinx()
    right.plot(steps, proxy, "s--", color=PALETTE["vermillion"], label="proxy reward")
    right.set_ylabel("proxy: reward-model score", color=PALETTE["vermillion"])
    right.spines["right"].set_visible(True)
    right.grid(False)
    ax.axvline(steps[best], color="0.4", lw=1.0, ls=":")
    ax.annotate(f"best checkpoint\n(step {steps[best]})", (steps[best], gold[best]),
                xytext=(8, 10), textcoords="offset points", fontsize=10)
    handles = ax.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
    where = f" ({n_prompts} prompts per point)" if n_prompts else ""
    ax.legend(handles, [h.get_label() for h in handles], loc="upper center", ncol=2,
              bbox_to_anchor=(0.5, -0.2), fontsize=10,
              title=f"measured during training{where}", title_fontsize=10)
    fig.tight_layout()
    return fig
