"""Diagrams of chapter 2 (book/02_memory.md): the ring all-reduce step by step, the data flow
of mixed-precision training, and one training step's memory as stacked bars."""

from __future__ import annotations

import numbers

from course_lib.plots.base import PALETTE

__all__ = ["ring_all_reduce_states", "ring_all_reduce_steps", "mixed_precision_flow",
           "step_memory_bars"]

STEP_PARTS = ("weights", "gradients", "optimizer", "activations")


def _check_devices(where: str, n_devices) -> int:
    if isinstance(n_devices, bool) or not isinstance(n_devices, numbers.Integral):
        raise TypeError(f"{where}: n_devices must be an integer, got {n_devices!r}")
    if not 2 <= n_devices <= 8:
        raise ValueError(f"{where}: n_devices must be between 2 and 8, got {n_devices!r}")
    return int(n_devices)


def ring_all_reduce_states(n_devices: int = 4) -> list[dict]:
    """The ring all-reduce as a list of states, one per step, for ``n_devices`` devices.

    Each device starts with its own tensor cut into ``n_devices`` chunks; a chunk's content is
    the set of devices whose values it holds summed. Reduce-scatter step ``t`` (0-based):
    device ``r`` sends chunk ``(r - t) % n`` to device ``r + 1``, which adds it to its own;
    all-gather step ``t``: device ``r`` sends its finished chunk ``(r + 1 - t) % n`` on and the
    neighbour copies it (the schedule of the chapter's ``ring_all_reduce``). Every state is
    ``{"phase", "step", "chunks": [[frozenset, ...] per device], "sent": {device: chunk}}``.
    """
    n = _check_devices("ring_all_reduce_states", n_devices)
    chunks = [[frozenset([r]) for _ in range(n)] for r in range(n)]
    states = [{"phase": "start", "step": 0, "chunks": [list(c) for c in chunks], "sent": {}}]
    for phase in ("reduce-scatter", "all-gather"):
        for step in range(n - 1):
            shift = -step if phase == "reduce-scatter" else 1 - step
            sent = {r: (r + shift) % n for r in range(n)}
            payloads = {r: chunks[r][c] for r, c in sent.items()}   # all send at once
            for r, c in sent.items():
                dst = (r + 1) % n
                chunks[dst][c] = (chunks[dst][c] | payloads[r] if phase == "reduce-scatter"
                                  else payloads[r])
            states.append({"phase": phase, "step": step + 1,
                           "chunks": [list(c) for c in chunks], "sent": sent})
    return states


def ring_all_reduce_steps(n_devices: int = 4):
    """The ring all-reduce of ``n_devices`` devices drawn step by step (one row per step).

    Each device panel shows its tensor's chunks; a chunk is labelled with the devices whose
    values it holds summed ("01" is device 0's values plus device 1's; "all" is the full sum)
    and shaded by how many it holds. In each row the chunk each device sent in that step is
    outlined in vermillion, with its destination written beside the row. Returns the figure.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    states = ring_all_reduce_states(n_devices)
    n = _check_devices("ring_all_reduce_steps", n_devices)
    fig, ax = plt.subplots(figsize=(9.0, 0.62 * len(states) + 0.9))
    ax.axis("off")
    label_w, gap, box = 3.1, 0.35, 0.55
    panel = n * box
    shades = ["#FFFFFF", "#DCEAF5", "#A9CCE6", "#6DA8D4", PALETTE["green"]]
    for row, st in enumerate(states):
        y = -row * 0.75
        if st["phase"] == "start":
            title = "start: own values"
        else:
            short = "reduce-scatter" if st["phase"] == "reduce-scatter" else "all-gather"
            title = f"{short} step {st['step']}"
        ax.text(0, y + box / 2, title, ha="left", va="center", fontsize=10,
                fontweight="bold" if st["step"] in (0, 1) else "normal")
        for dev in range(n):
            x0 = label_w + dev * (panel + gap)
            if row == 0:
                ax.text(x0 + panel / 2, y + box + 0.25, f"device {dev}", ha="center",
                        va="bottom", fontsize=10, fontweight="bold")
            for c, content in enumerate(st["chunks"][dev]):
                k = len(content)
                full = k == n
                color = PALETTE["green"] if full else shades[min(k - 1, len(shades) - 2)]
                sent = st["sent"].get((dev - 1) % n) == c and st["phase"] != "start"
                edge = PALETTE["vermillion"] if sent else "#555555"
                ax.add_patch(Rectangle((x0 + c * box, y), box, box, facecolor=color,
                                       edgecolor=edge, lw=2.4 if sent else 0.8))
                text = "all" if full else "".join(str(d) for d in sorted(content))
                ax.text(x0 + (c + 0.5) * box, y + box / 2, text, ha="center", va="center",
                        fontsize=9, color="white" if full else "black")
    width = label_w + n * (panel + gap)
    ax.text(width - gap, -len(states) * 0.75 + 0.1,
            "outlined: the chunk that arrived from the left neighbour in this step "
            "(added in reduce-scatter, copied in all-gather)",
            ha="right", va="top", fontsize=9, color=PALETTE["vermillion"])
    ax.set_xlim(-0.05, width)
    ax.set_ylim(-len(states) * 0.75 - 0.35, box + 0.7)
    ax.set_title(f"Ring all-reduce on {n} devices: one chunk to the right neighbour "
                 "per step", fontsize=11)
    return fig


def mixed_precision_flow():
    """Mixed-precision training as a data flow: the fp32 master weights are cast to 16 bits,
    forward and backward run in 16 bits and give 16-bit gradients, and the update (Adam's fp32
    moments) is applied to the fp32 master. Bytes per parameter are written in each box.
    Returns the figure."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    fig, ax = plt.subplots(figsize=(9.0, 3.6))
    ax.axis("off")
    ax.set_xlim(0, 10)
    ax.set_ylim(0, 4.2)
    x0, x1, x2 = 0.1, 3.85, 7.6
    boxes = {
        "master": (x0, 2.6, "fp32 master weights\n4 B / parameter", PALETTE["green"]),
        "w16": (x1, 2.6, "16-bit weights\n2 B / parameter", PALETTE["sky"]),
        "fwd": (x2, 2.6, "forward and\nbackward in 16 bits", PALETTE["sky"]),
        "grad": (x2, 0.3, "16-bit gradients\n2 B / parameter", PALETTE["sky"]),
        "adam": (x1, 0.3, "Adam moments m, v\nfp32: 4 + 4 B", PALETTE["green"]),
        "update": (x0, 0.3, "fp32 update\nw ← w − lr · m / √v", PALETTE["orange"]),
    }
    w, h = 2.3, 1.1
    for x, y, text, color in boxes.values():
        ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.04",
                                    facecolor=color, alpha=0.35, edgecolor="#333333"))
        ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=10)

    def arrow(a, b, label, side_a, side_b):
        ax_, ay_ = _anchor(boxes[a], side_a, w, h)
        bx_, by_ = _anchor(boxes[b], side_b, w, h)
        ax.add_patch(FancyArrowPatch((ax_, ay_), (bx_, by_), arrowstyle="-|>",
                                     mutation_scale=16, color="#333333", lw=1.6))
        if ay_ == by_:      # a horizontal arrow: its label above it
            ax.text((ax_ + bx_) / 2, ay_ + 0.1, label, ha="center", va="bottom", fontsize=9)
        else:               # a vertical one: beside it
            ax.text(ax_ + 0.12, (ay_ + by_) / 2, label, ha="left", va="center", fontsize=9)

    arrow("master", "w16", "cast to\n16 bits", "right", "left")
    arrow("w16", "fwd", "run the\nmodel", "right", "left")
    arrow("fwd", "grad", "backward", "bottom", "top")
    arrow("grad", "adam", "to fp32,\nupdate m, v", "left", "right")
    arrow("adam", "update", "step\nm / √v", "left", "right")
    arrow("update", "master", "tiny steps\nsurvive in fp32", "top", "bottom")
    ax.set_title("Mixed precision: compute in 16 bits, keep and update the weights in fp32",
                 fontsize=11)
    return fig


def _anchor(box, side, w, h):
    x, y = box[0], box[1]
    return {"right": (x + w, y + h / 2), "left": (x, y + h / 2),
            "top": (x + w / 2, y + h), "bottom": (x + w / 2, y)}[side]


def step_memory_bars(steps: dict, unit: float = 1e6, unit_name: str = "MB"):
    """One training step's memory as stacked bars, one bar per configuration.

    ``steps``: label -> ``{"weights", "gradients", "optimizer", "activations": bytes}`` (what
    ``course_lib.memory.measure_training_step`` returns; extra keys such as "total" are
    ignored). Each bar stacks the four parts in ``unit_name`` and is topped by its total.
    Returns the figure.
    """
    import matplotlib.pyplot as plt
    import numpy as np

    where = "step_memory_bars"
    if not isinstance(steps, dict) or not steps:
        raise ValueError(f"{where}: steps must be a non-empty dict label -> parts, got "
                         f"{steps!r}")
    for label, parts in steps.items():
        if not isinstance(label, str):
            raise TypeError(f"{where}: steps' keys must be labels (str), got {label!r}")
        if not isinstance(parts, dict) or not set(STEP_PARTS) <= set(parts):
            raise ValueError(f"{where}: steps[{label!r}] must have the parts "
                             f"{list(STEP_PARTS)}, got {parts!r}")
        for part in STEP_PARTS:
            v = parts[part]
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not 0 <= v < 1e18:
                raise ValueError(f"{where}: steps[{label!r}][{part!r}] must be a byte count "
                                 f">= 0, got {v!r}")
    if isinstance(unit, bool) or not isinstance(unit, numbers.Real) or not unit > 0:
        raise ValueError(f"{where}: unit must be a positive number of bytes, got {unit!r}")
    colors = [PALETTE["blue"], PALETTE["orange"], PALETTE["green"], PALETTE["purple"]]
    names = ["weights", "gradients", "optimizer states (Adam)", "activations"]
    labels = list(steps)
    fig, ax = plt.subplots(figsize=(7.5, 3.8))
    bottom = np.zeros(len(labels))
    for part, name, color in zip(STEP_PARTS, names, colors, strict=True):
        vals = np.array([steps[k][part] / unit for k in labels])
        ax.bar(labels, vals, bottom=bottom, color=color, label=name, width=0.6)
        bottom += vals
    for i, total in enumerate(bottom):
        ax.text(i, total, f"{total:.1f}", ha="center", va="bottom", fontsize=10)
    ax.set(ylabel=f"{unit_name} in one training step", ylim=(0, bottom.max() * 1.15))
    ax.legend(loc="upper left", fontsize=10)
    return fig
