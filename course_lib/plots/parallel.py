"""Diagram of chapter 2: who holds and who sends what under DDP, ZeRO and FSDP."""

from __future__ import annotations

from course_lib.plots.base import PALETTE

__all__ = ['data_parallel_diagram']


PARTS = ("weights", "gradients", "optimizer")


def _check_holdings(holdings) -> int:
    """The number of devices of a ``{strategy: {part: [slices of device 0, ...]}}`` table (as
    ``course_lib.distributed.holdings`` returns per strategy); ValueError/TypeError else."""
    where = "data_parallel_diagram"
    if not isinstance(holdings, dict) or not holdings:
        raise ValueError(f"{where}: holdings must be a non-empty dict strategy -> "
                         f"{{part: slices per device}}, got {holdings!r}")
    n_devices = None
    for strategy, grid in holdings.items():
        if not isinstance(strategy, str):
            raise TypeError(f"{where}: holdings' keys must be strategy names (str), got "
                            f"{strategy!r}")
        if not isinstance(grid, dict) or set(grid) != set(PARTS):
            raise ValueError(f"{where}: holdings[{strategy!r}] must be a dict with the parts "
                             f"{list(PARTS)}, got {grid!r}")
        for part in PARTS:
            devices = grid[part]
            n = len(devices) if isinstance(devices, list | tuple) else 0
            if not 1 <= n <= 64 or (n_devices is not None and n != n_devices):
                raise ValueError(f"{where}: holdings[{strategy!r}][{part!r}] must list the "
                                 f"slices of each of the same 1..64 devices, got {devices!r}")
            n_devices = n
            for slices in devices:
                if not isinstance(slices, list | tuple) or any(
                        isinstance(x, bool) or not isinstance(x, int) or not 0 <= x < n
                        for x in slices):
                    raise ValueError(f"{where}: holdings[{strategy!r}][{part!r}] holds "
                                     f"{slices!r}, not slice numbers in 0..{n - 1}")
    return n_devices


def data_parallel_diagram(holdings: dict, traffic: dict | None = None):
    """Who holds what under DDP, ZeRO-1/2 and ZeRO-3 (FSDP), and what they send each step.

    ``holdings``: strategy -> ``{part: [the slices device 0 stores, device 1, ...]}`` for the
    parts "weights", "gradients" and "optimizer" (a strategy's entry is what
    ``course_lib.distributed.holdings(strategy, n_devices)`` returns); ``traffic``: strategy
    -> what it sends each step (``course_lib.distributed.TRAFFIC``), written under its row.

    One row per strategy, one panel per device. In a panel, each part of the model states
    (16-bit weights, 16-bit gradients, fp32 optimizer states: master weights and Adam's two
    moments) is a bar cut into ``n_devices`` slices; a filled slice is stored on that device,
    an empty one lives on another device. Widths follow mixed-precision Adam's bytes per
    parameter (2, 2, 12). Returns the figure. Taught in book/02_memory.md.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    n_devices = _check_holdings(holdings)
    traffic = {} if traffic is None else traffic
    if not isinstance(traffic, dict) or not all(isinstance(v, str) for v in traffic.values()):
        raise TypeError(f"data_parallel_diagram: traffic must be a dict strategy -> str, got "
                        f"{traffic!r}")
    strategies = list(holdings)
    parts = [("weights", "weights (2 B)", 2, PALETTE["blue"]),
             ("gradients", "gradients (2 B)", 2, PALETTE["orange"]),
             ("optimizer", "optimizer states (12 B)", 12, PALETTE["green"])]
    grids = [holdings[s] for s in strategies]
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
        axes[row][-1].text(1.0, -0.25, "sends: " + traffic.get(strategy, ""), fontsize=8,
                           ha="right", va="top", transform=axes[row][-1].transAxes,
                           style="italic")
    fig.suptitle(f"Data parallelism on {n_devices} devices: filled = stored here, "
                 "hatched = stored elsewhere", fontsize=10)
    fig.tight_layout()
    return fig
