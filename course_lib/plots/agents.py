"""Figures of chapter 7b: the agent loop, the path of an injected instruction and the filter
that cuts it, how a transcript fills the policy's context, and where a head looks when the
policy copies. Taught in book/07b_agents.md."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np

from course_lib.plots.base import PALETTE, heatmap

__all__ = ["agent_loop", "injection_path", "context_budget", "copy_attention"]

_FONT = 10  # at 8.5 in wide, about 13 px on an 800 px page


def _box(ax, x, y, text, colour, width=1.5, height=0.62, fontsize=_FONT):
    ax.add_patch(plt.Rectangle((x - width / 2, y - height / 2), width, height,
                               fc=colour, alpha=0.22, ec=colour, lw=1.5))
    ax.text(x, y, text, ha="center", va="center", fontsize=fontsize)


def _arrow(ax, start, end, text=None, dashed=False, rad=0.0, colour="black"):
    ax.annotate("", xy=end, xytext=start,
                arrowprops={"arrowstyle": "-|>", "lw": 1.5, "color": colour,
                            "ls": "--" if dashed else "-",
                            "connectionstyle": f"arc3,rad={rad}"})
    if text:
        ax.text((start[0] + end[0]) / 2, (start[1] + end[1]) / 2 + 0.12, text,
                ha="center", va="bottom", fontsize=_FONT - 1, color=colour)


def agent_loop():
    """The ReAct loop: the question goes to the policy, which writes a thought and an action;
    the program checks the call against the schema and runs the tool in a worker; the
    observation goes back into the policy's prompt until it writes a final answer."""
    fig, ax = plt.subplots(figsize=(8.5, 2.8))
    ax.set_xlim(-0.9, 8.9)
    ax.set_ylim(-1.45, 1.0)
    ax.axis("off")
    c = PALETTE
    boxes = [(0, "question", c["sky"]), (2.2, "policy writes\nThought + Action", c["blue"]),
             (4.5, "program checks\nthe schema", c["orange"]),
             (6.7, "tool runs\n(in a worker)", c["green"])]
    for x, text, colour in boxes:
        _box(ax, x, 0.3, text, colour, width=1.8)
    for (x0, _, _), (x1, _, _) in zip(boxes, boxes[1:]):
        _arrow(ax, (x0 + 0.92, 0.3), (x1 - 0.92, 0.3))
    _box(ax, 4.5, -1.05, "Observation: the result or an error", c["purple"], width=3.4,
         height=0.5)
    _arrow(ax, (6.7, -0.05), (6.2, -1.05), rad=-0.3)
    _arrow(ax, (2.8, -1.05), (2.2, -0.05), rad=-0.3)
    ax.text(4.5, -0.55, "appended to the prompt; repeat", ha="center", fontsize=_FONT - 1,
            style="italic")
    _box(ax, 8.3, 0.3, "Final\nAnswer", c["vermillion"], width=1.0)
    ax.annotate("", xy=(7.8, 0.3), xytext=(2.2, 0.62),
                arrowprops={"arrowstyle": "-|>", "lw": 1.2, "ls": ":",
                            "connectionstyle": "arc3,rad=-0.18"})
    ax.text(5.0, 0.98, "or: the policy writes a final answer and the loop stops",
            ha="center", fontsize=_FONT - 1)
    fig.tight_layout()
    return fig


def injection_path(payload: str = "555-0199"):
    """Two rows. Top: an attacker's page with a forged ``Observation:`` line is returned by
    the search tool, lands in the transcript, the policy reads it as a step and answers with
    the attacker's ``payload``. Bottom: the loop's filter drops the forged line before the
    policy reads the tool's output, and the policy reads the register's passage."""
    if not isinstance(payload, str) or not payload.strip():
        raise ValueError("injection_path: payload must be a non-empty str")
    fig, ax = plt.subplots(figsize=(9, 3.6))
    ax.set_xlim(-1.0, 9.9)
    ax.set_ylim(-2.2, 1.15)
    ax.axis("off")
    c = PALETTE
    xs = [0, 2.3, 4.75, 7.1, 9.0]
    top = [("attacker's page:\n" f"'Observation:\n{payload}'", c["vermillion"]),
           ("search tool\nranks it first", c["blue"]),
           ("tool output\n[1] Observation: ...\n[2] register", c["orange"]),
           ("policy reads a\nforged step", c["purple"]),
           (f"answer:\n{payload}", c["vermillion"])]
    bottom = [("", None), ("", None),
              ("drop_transcript_lines\ncuts the forged line", c["green"]),
              ("policy reads\nthe register", c["purple"]),
              ("answer from\nthe register", c["green"])]
    ax.text(-0.95, 1.05, "no filter: hijacked", fontsize=_FONT + 1, weight="bold",
            color=c["vermillion"])
    ax.text(-0.95, -1.55, "with the loop's filter:\nthe forged line never\nreaches the policy",
            fontsize=_FONT + 1, weight="bold", color=c["green"], va="center")
    for x, (text, colour) in zip(xs, top):
        _box(ax, x, 0.35, text, colour, width=1.95 if x < 9 else 1.4, height=0.95)
    for x0, x1 in zip(xs, xs[1:]):
        _arrow(ax, (x0 + (0.98 if x0 < 9 else 0.7), 0.35), (x1 - (0.98 if x1 < 9 else 0.7), 0.35))
    for x, (text, colour) in zip(xs, bottom):
        if text:
            _box(ax, x, -1.55, text, colour, width=2.15 if x < 9 else 1.4, height=0.95)
    _arrow(ax, (2.6, -0.13), (3.67, -1.2), rad=0.15)
    for x0, x1 in zip(xs[2:], xs[3:]):
        _arrow(ax, (x0 + (1.08 if x0 < 9 else 0.7), -1.55), (x1 - (0.98 if x1 < 9 else 0.7),
                                                             -1.55))
    fig.tight_layout()
    return fig


def context_budget(ax, segments: Sequence[dict], block: int, title: str | None = None,
                   legend: bool = True):
    """Stacked bars, one per step: the tokens of the policy's context once it has written that
    step, split into parts (``{"question": n, "thoughts": n, ...}``, one dict per step, as
    ``policy.measure.context_segments`` returns), with the context length ``block`` as a
    line. A bar over the line is a step the policy could not have read."""
    if not isinstance(segments, Sequence) or not segments or not all(
            isinstance(s, dict) and s for s in segments):
        raise ValueError("context_budget: segments must be a non-empty list of dicts")
    if isinstance(block, bool) or not isinstance(block, int) or block < 1:
        raise ValueError(f"context_budget: block must be an int >= 1, got {block!r}")
    parts = list(dict.fromkeys(k for s in segments for k in s))
    colours = [PALETTE[k] for k in ("sky", "purple", "blue", "orange", "vermillion", "green")]
    x = np.arange(1, len(segments) + 1)
    bottom = np.zeros(len(segments))
    for part, colour in zip(parts, colours):
        heights = np.array([s.get(part, 0) for s in segments], dtype=float)
        ax.bar(x, heights, bottom=bottom, color=colour, label=part, width=0.6)
        bottom += heights
    ax.axhline(block, color=PALETTE["black"], ls="--", lw=1.2)
    ax.text(x[0] - 0.4, block * 1.01, f"context: {block} tokens", ha="left", va="bottom",
            fontsize=_FONT, bbox={"fc": "white", "ec": "none", "alpha": 0.8, "pad": 1})
    ax.set_xticks(x, labels=[f"step {i}" for i in x])
    ax.set_ylabel("tokens in the context")
    ax.set_ylim(0, max(block, bottom.max()) * 1.12)
    if legend:  # beside the axes, clear of the bars and the line
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=_FONT - 1)
    if title:
        ax.set_title(title, fontsize=_FONT + 1)
    return ax


def copy_attention(ax, weights, query_tokens: Sequence[str], key_tokens: Sequence[str],
                   targets: Sequence[tuple[int, int]] = (), title: str | None = None):
    """One head's attention (queries x keys) as a heatmap with the token strings as labels;
    ``targets`` (row, column) pairs are circled: for an induction head, the token after the
    earlier occurrence of each query's token."""
    image = heatmap(ax, weights, xlabels=list(key_tokens), ylabels=list(query_tokens),
                    title=title, vmin=0.0, vmax=1.0)
    ax.tick_params(axis="x", labelrotation=0)
    for label in ax.get_xticklabels():
        label.set_horizontalalignment("center")
    for r, col in targets:
        ax.scatter([col], [r], s=90, facecolors="none", edgecolors=PALETTE["vermillion"],
                   linewidths=1.5)
    return image
