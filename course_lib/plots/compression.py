"""Pictures of chapter 6, part 2 (book/06b_inference.md): soft targets at several temperatures,
one step of speculative decoding, the rows and columns structured pruning removes, and the
size-against-perplexity trade-off of every compressed model."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from course_lib.plots.base import PALETTE

__all__ = ["soft_targets", "speculative_step", "structured_pruning", "size_vs_perplexity"]


def _as_array(x, name: str, where: str, ndim: int) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().double().numpy()
    try:
        a = np.asarray(x, dtype=float)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where}: {name} must be numeric, got {type(x).__name__}") from err
    if a.ndim != ndim or a.size == 0 or not np.isfinite(a).all():
        raise ValueError(f"{where}: {name} must be a finite, non-empty {ndim}-D array, "
                         f"got shape {a.shape}")
    return a


def soft_targets(logits, temperatures: Sequence[float] = (1, 2, 4, 8),
                 labels: Sequence[str] | None = None, top: int = 6):
    """Bars of ``softmax(logits / T)`` for each temperature, on a log axis: the ``top`` tokens
    with the largest logits, and one bar for the probability left to all the other tokens.
    ``labels`` names the tokens (one per logit). Returns the Figure."""
    import matplotlib.pyplot as plt

    where = "soft_targets"
    z = _as_array(logits, "logits", where, 1)
    if not temperatures or any(isinstance(t, bool) or not isinstance(t, int | float) or t <= 0
                               for t in temperatures):
        raise ValueError(f"{where}: temperatures must be positive numbers, got {temperatures!r}")
    if isinstance(top, bool) or not isinstance(top, int) or not 1 <= top < len(z):
        raise ValueError(f"{where}: top must be an int in [1, {len(z) - 1}], got {top!r}")
    if labels is not None and len(labels) != len(z):
        raise ValueError(f"{where}: labels must name every logit ({len(z)}), got {len(labels)}")
    order = np.argsort(-z)[:top]
    names = [repr(labels[i]) if labels is not None else f"token {i}" for i in order]
    names.append(f"other {len(z) - top:,}")
    fig, ax = plt.subplots(figsize=(8, 3.6))
    colors = [PALETTE["blue"], PALETTE["sky"], PALETTE["orange"], PALETTE["vermillion"],
              PALETTE["green"], PALETTE["purple"]]
    width = 0.8 / len(temperatures)
    for j, t in enumerate(temperatures):
        p = np.exp((z - z.max()) / t)
        p /= p.sum()
        heights = list(p[order]) + [1 - p[order].sum()]
        ax.bar(np.arange(top + 1) + (j - (len(temperatures) - 1) / 2) * width, heights, width,
               color=colors[j % len(colors)], label=f"T = {t:g}")
    ax.set_xticks(np.arange(top + 1), names, fontsize=10)
    ax.set_yscale("log")      # the small probabilities are the point: a log axis shows them
    ax.set_ylabel("probability (log scale)")
    ax.legend(ncol=len(temperatures), loc="lower center", bbox_to_anchor=(0.5, 1.0))
    fig.tight_layout()
    return fig


def _box(ax, x, y, text, face, edge="black", hatch=None, text_color="black"):
    from matplotlib.patches import FancyBboxPatch

    ax.add_patch(FancyBboxPatch((x + 0.06, y - 0.32), 0.88, 0.64,
                                boxstyle="round,pad=0.02,rounding_size=0.08",
                                facecolor=face, edgecolor=edge, hatch=hatch, linewidth=1.2))
    ax.text(x + 0.5, y, text, ha="center", va="center", fontsize=11, color=text_color)


def speculative_step(k: int = 4, rejected_at: int = 2, prompt: Sequence[str] = ("The", "cat")):
    """One step of speculative sampling, twice: the draft proposes ``k`` tokens, the target
    scores all of them in one pass; above, the first ``rejected_at`` are accepted (green), the
    next is rejected (red) and replaced by a sample from the residual, the rest discarded;
    below, all ``k`` are accepted and the target's last distribution gives a bonus token.
    Returns the Figure."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    where = "speculative_step"
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= 6:
        raise ValueError(f"{where}: k must be an int in [1, 6], got {k!r}")
    if isinstance(rejected_at, bool) or not isinstance(rejected_at, int) \
            or not 0 <= rejected_at < k:
        raise ValueError(f"{where}: rejected_at must be an int in [0, {k - 1}], "
                         f"got {rejected_at!r}")
    if not prompt or len(prompt) > 3:
        raise ValueError(f"{where}: prompt must be 1 to 3 words, got {prompt!r}")
    colors = {"prompt": "#e8e8e8", "draft": PALETTE["sky"], "ok": PALETTE["green"],
              "bad": PALETTE["vermillion"], "new": PALETTE["orange"], "gone": "white"}
    n0 = len(prompt)
    fig, ax = plt.subplots(figsize=(8.6, 5.2))
    rows = {"top": 4.2, "bottom": 0.9}
    for case, y0 in rows.items():
        all_ok = case == "bottom"
        for i, word in enumerate(prompt):
            _box(ax, i, y0 + 1.0, word, colors["prompt"])
            _box(ax, i, y0, word, colors["prompt"])
        for i in range(k):
            if all_ok or i < rejected_at:
                _box(ax, n0 + i, y0 + 1.0, f"$d_{i + 1}$", colors["draft"])
                _box(ax, n0 + i, y0, f"$d_{i + 1}$", colors["ok"], text_color="white")
            elif i == rejected_at:
                _box(ax, n0 + i, y0 + 1.0, f"$d_{i + 1}$", colors["bad"], text_color="white")
                _box(ax, n0 + i, y0, "$r$", colors["new"])
            else:   # after the first rejection: thrown away, whatever the target thinks
                _box(ax, n0 + i, y0 + 1.0, f"$d_{i + 1}$", colors["gone"], edge="#bbbbbb",
                     text_color="#999999")
                _box(ax, n0 + i, y0, "", colors["gone"], edge="#bbbbbb")
        if all_ok:
            _box(ax, n0 + k, y0, "$b$", colors["new"])
        # the target's single pass: one bracket over the k + 1 positions it scores
        x_a, x_b = n0 - 0.05 + 0.0, n0 + k + 1 - 0.05
        ax.annotate("", xy=(x_a + 0.1, y0 + 1.45), xytext=(x_b, y0 + 1.45),
                    arrowprops=dict(arrowstyle="|-|", color="black", linewidth=1.2))
        ax.text((x_a + x_b) / 2, y0 + 1.6, f"target: one pass scores all {k + 1} positions",
                ha="center", va="bottom", fontsize=10)
        ax.text(-0.2, y0 + 1.0, "draft proposes", ha="right", va="center", fontsize=10)
        ax.text(-0.2, y0, "output", ha="right", va="center", fontsize=10)
        note = (f"all {k} accepted: bonus token $b$ from the target's next distribution"
                if all_ok else
                f"$d_{rejected_at + 1}$ rejected: $r$ sampled from the residual "
                f"norm(max(0, p - q)); the rest of the draft is discarded"
                if rejected_at < k - 1 else
                f"$d_{k}$ rejected: $r$ sampled from the residual norm(max(0, p - q))")
        ax.text(-2.1, y0 - 0.55, note, ha="left", va="top", fontsize=10)
    ax.set_xlim(-2.2, n0 + k + 1.2)
    ax.set_ylim(0.0, 6.6)
    ax.axis("off")
    ax.legend(handles=[Patch(color=colors["draft"], label="drafted"),
                       Patch(color=colors["ok"], label="accepted"),
                       Patch(color=colors["bad"], label="rejected"),
                       Patch(color=colors["new"], label="sampled by the target")],
              loc="upper center", bbox_to_anchor=(0.5, 1.04), ncol=4)
    return fig


def structured_pruning(w1, w2, removed: Sequence[int]):
    """The two matrices of an MLP block, ``w1`` (d_ff, d_model) = ``fc1.weight`` and ``w2``
    (d_model, d_ff) = ``fc2.weight``, shown as magnitudes; the hidden units in ``removed`` are
    whole rows of ``w1`` and whole columns of ``w2``, crossed out. Returns the Figure."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    where = "structured_pruning"
    a, b = _as_array(w1, "w1", where, 2), _as_array(w2, "w2", where, 2)
    if b.shape != a.shape[::-1]:
        raise ValueError(f"{where}: w2 must be the transpose shape of w1 {a.shape[::-1]}, "
                         f"got {b.shape}")
    d_ff = a.shape[0]
    removed = sorted(set(int(r) for r in removed))
    if any(not 0 <= r < d_ff for r in removed):
        raise ValueError(f"{where}: removed hidden units must be in [0, {d_ff})")
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(8.6, 4.4),
                                   gridspec_kw={"width_ratios": [a.shape[1], b.shape[1]]})
    vmax = max(np.abs(a).max(), np.abs(b).max())
    ax1.imshow(np.abs(a), cmap="Blues", vmin=0, vmax=vmax, aspect="equal")
    ax2.imshow(np.abs(b), cmap="Blues", vmin=0, vmax=vmax, aspect="equal")
    for r in removed:
        ax1.add_patch(Rectangle((-0.5, r - 0.5), a.shape[1], 1, facecolor="#dddddd",
                                edgecolor=PALETTE["vermillion"], hatch="xx", linewidth=0.8))
        ax2.add_patch(Rectangle((r - 0.5, -0.5), 1, b.shape[0], facecolor="#dddddd",
                                edgecolor=PALETTE["vermillion"], hatch="xx", linewidth=0.8))
    ax1.set_title("$W_1$ = fc1.weight: a row per hidden unit", fontsize=11)
    ax1.set_xlabel(f"model dimension ({a.shape[1]})")
    ax1.set_ylabel(f"hidden unit ({d_ff})")
    ax2.set_title("$W_2$ = fc2.weight: a column per hidden unit", fontsize=11)
    ax2.set_xlabel(f"hidden unit ({d_ff})")
    ax2.set_ylabel(f"model dimension ({b.shape[0]})")
    for ax in (ax1, ax2):
        ax.set_xticks([])
        ax.set_yticks([])
        ax.grid(False)
    fig.suptitle(f"{len(removed)} of {d_ff} hidden units removed (crossed): "
                 "both matrices really shrink", fontsize=12)
    fig.tight_layout()
    return fig


def size_vs_perplexity(points, baseline: float | None = None, front_excludes: Sequence[str] = ()):
    """Every compressed model as a point: weight storage (KB) against held-out perplexity,
    with its 95% interval as an error bar and its name beside it. The Pareto front (points
    that no other point beats on both size and perplexity) is joined by a line, computed over
    the points not named in ``front_excludes`` (those are drawn apart, e.g. a different
    model). ``points`` is a list of ``(name, kb, ppl, low, high)`` or ``(name, kb, ppl, low,
    high, (dx, dy))`` with a label offset in points (far offsets get a leader line). Returns
    the Figure."""
    import matplotlib.pyplot as plt

    where = "size_vs_perplexity"
    if not points:
        raise ValueError(f"{where}: points is empty")
    rows = []
    for pt in points:
        if not isinstance(pt, tuple | list) or len(pt) not in (5, 6):
            raise ValueError(f"{where}: each point is (name, kb, ppl, low, high[, offset]), "
                             f"got {pt!r}")
        name, kb, ppl, low, high = pt[:5]
        if not all(isinstance(v, int | float) and np.isfinite(v) for v in (kb, ppl, low, high)) \
                or not low <= ppl <= high or kb <= 0:
            raise ValueError(f"{where}: {name!r} needs kb > 0 and low <= ppl <= high")
        rows.append((str(name), float(kb), float(ppl), float(low), float(high),
                     tuple(pt[5]) if len(pt) == 6 else (8, 0)))
    unknown = set(front_excludes) - {r[0] for r in rows}
    if unknown:
        raise ValueError(f"{where}: front_excludes names no point: {sorted(unknown)}")
    candidates = [r for r in rows if r[0] not in front_excludes]
    front = sorted((r for r in candidates if not any(
        o[1] <= r[1] and o[2] <= r[2] and (o[1], o[2]) != (r[1], r[2]) for o in candidates)),
        key=lambda r: r[1])
    front_names = {r[0] for r in front}
    fig, ax = plt.subplots(figsize=(8.6, 5.6))
    ax.plot([r[1] for r in front], [r[2] for r in front], color=PALETTE["green"],
            linewidth=1.5, zorder=1, label="Pareto front: nothing smaller is better")
    for name, kb, ppl, low, high, (dx, dy) in rows:
        color = (PALETTE["purple"] if name in front_excludes else
                 PALETTE["blue"] if name in front_names else PALETTE["vermillion"])
        ax.errorbar(kb, ppl, yerr=[[ppl - low], [high - ppl]], fmt="o", capsize=3,
                    color=color, zorder=2)
        far = abs(dx) > 15 or abs(dy) > 15
        ax.annotate(name, (kb, ppl), xytext=(dx, dy), textcoords="offset points", fontsize=10,
                    ha="left" if dx > 0 else "right" if dx < 0 else "center", va="center",
                    arrowprops=dict(arrowstyle="-", color="#777777", linewidth=0.8)
                    if far else None)
    if baseline is not None:
        ax.axhline(baseline, color="black", linestyle="--", linewidth=1, zorder=0,
                   label="dense perplexity")
    from matplotlib.lines import Line2D

    marks = [("on the front", PALETTE["blue"]), ("beaten on both axes", PALETTE["vermillion"])]
    if front_excludes:
        marks.append(("reference, not on the front", PALETTE["purple"]))
    handles, _ = ax.get_legend_handles_labels()
    handles += [Line2D([], [], marker="o", linestyle="", color=c, label=t) for t, c in marks]
    ax.legend(handles=handles, loc="center right", bbox_to_anchor=(1.0, 0.62))
    ax.set_xlim(0, 1.1 * max(r[1] for r in rows))
    ax.set_xlabel("weight storage (KB)")
    ax.set_ylabel("held-out perplexity (95% interval)")
    fig.tight_layout()
    return fig
