"""Diagram of chapter 2: who holds and who sends what under DDP, ZeRO and FSDP."""

from __future__ import annotations

from course_lib.plots.base import PALETTE

__all__ = ['data_parallel_diagram']

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
