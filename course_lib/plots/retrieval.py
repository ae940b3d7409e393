"""Pictures of chapter 7 (retrieval): chunks as spans of a text, how an IVF index and an
HNSW graph narrow a search, and MaxSim's token-by-token matches.

Taught in book/07_rag_agents.md, "Chunking", "A vector index at scale" and "Rerank".
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np

from course_lib.plots.base import PALETTE, SEQUENTIAL_CMAP

__all__ = ["chunk_spans", "ivf_hnsw", "hnsw_greedy_path", "maxsim_heatmap"]

_COLOURS = [PALETTE[c] for c in ("blue", "orange", "green", "purple")]


def chunk_spans(text: str, settings: Sequence[tuple[int, int]] = ((120, 0), (120, 40)),
                figsize=(9, 3.4)):
    """Character chunks of ``text`` drawn as bars over its character positions, one row per
    ``(size, overlap)`` setting, with the sentence ends as dotted lines."""
    from course_lib.rag import chunk_text, sentence_spans

    if not isinstance(text, str) or not text:
        raise ValueError("chunk_spans: text must be a non-empty str")
    if not settings:
        raise ValueError("chunk_spans: settings must name at least one (size, overlap)")
    fig, ax = plt.subplots(figsize=figsize)
    ticks, labels = [], []
    for row, (size, overlap) in enumerate(settings):
        base = (len(settings) - 1 - row) * 1.3       # the first setting on top
        for i, c in enumerate(chunk_text(text, size, overlap, by="char")):
            y = base + (i % 2) * 0.45                # neighbours alternate lanes, so overlaps show
            ax.barh(y, c.end - c.start, left=c.start, height=0.38,
                    color=_COLOURS[i % len(_COLOURS)], alpha=0.75)
        ticks.append(base + 0.22)
        labels.append(f"size {size},\n" + ("no overlap" if overlap == 0 else f"overlap {overlap}"))
    for _, end in sentence_spans(text):
        ax.axvline(end, color=PALETTE["black"], lw=0.8, ls=":")
    ax.set_yticks(ticks, labels, fontsize=11)
    ax.set_xlim(0, len(text))
    ax.set_xlabel("character position (dotted lines: sentence ends)", fontsize=11)
    ax.tick_params(axis="x", labelsize=10)
    ax.set_title("Chunks as spans of the text", fontsize=12)
    ax.grid(False)
    fig.tight_layout()
    return fig


def _kmeans(points: np.ndarray, k: int, rng: np.random.Generator, iters: int = 20):
    centres = points[rng.choice(len(points), k, replace=False)]
    for _ in range(iters):
        cell = ((points[:, None] - centres[None]) ** 2).sum(-1).argmin(1)
        centres = np.stack([points[cell == j].mean(0) if (cell == j).any() else centres[j]
                            for j in range(k)])
    return centres, ((points[:, None] - centres[None]) ** 2).sum(-1).argmin(1)


def _neighbours(points: np.ndarray, ids: Sequence[int], m: int) -> dict[int, set[int]]:
    """Each node of a layer linked to its ``m`` nearest nodes of the layer, both ways."""
    ids = list(ids)
    links = {i: set() for i in ids}
    for i in ids:
        near = sorted((j for j in ids if j != i),
                      key=lambda j: float(((points[i] - points[j]) ** 2).sum()))[:m]
        for j in near:
            links[i].add(j)
            links[j].add(i)
    return links


def hnsw_greedy_path(points: np.ndarray, layers: Sequence[Sequence[int]], query: np.ndarray,
                     m: int = 3) -> list[list[int]]:
    """The greedy descent of an HNSW search, layer by layer (top layer first): in each layer
    move to the linked node nearest the query while that gets closer; the node reached is
    where the next layer starts. Returns the nodes visited in each layer."""
    points, query = np.asarray(points, dtype=float), np.asarray(query, dtype=float)
    if not layers or any(len(layer) == 0 for layer in layers):
        raise ValueError("hnsw_greedy_path: layers must be non-empty lists of node ids")

    def dist(i):
        return float(((points[i] - query) ** 2).sum())

    node, paths = layers[0][0], []
    for layer in layers:
        links = _neighbours(points, layer, m)
        path = [node]
        while True:
            best = min(links[node], key=dist, default=node)
            if dist(best) >= dist(node):
                break
            node = best
            path.append(node)
        paths.append(path)
    return paths


def ivf_hnsw(seed: int = 0, n_points: int = 240, n_cells: int = 8, nprobe: int = 2,
             figsize=(9, 4.6)):
    """Two approximate nearest-neighbour searches on the same 2-D points. Left, IVF: k-means
    cells, and a query that searches only the ``nprobe`` cells with the nearest centroids.
    Right, HNSW: three layers of graphs (each a sparser subset of the one below) and the
    greedy path of a search going down them."""
    if nprobe < 1 or nprobe > n_cells:
        raise ValueError(f"ivf_hnsw: nprobe must be in [1, {n_cells}], got {nprobe!r}")
    rng = np.random.default_rng(seed)
    blobs = rng.uniform(-1, 1, (n_cells, 2))
    points = blobs[rng.integers(0, n_cells, n_points)] + 0.28 * rng.standard_normal((n_points, 2))
    query = np.array([0.15, -0.1])
    centres, cell = _kmeans(points, n_cells, rng)
    probed = np.argsort(((centres - query) ** 2).sum(-1))[:nprobe]

    fig = plt.figure(figsize=figsize)
    grid = fig.add_gridspec(3, 2, width_ratios=(1.15, 1), wspace=0.08, hspace=0.15)
    ax = fig.add_subplot(grid[:, 0])
    lo, hi = points.min(0) - 0.15, points.max(0) + 0.15
    xs, ys = np.meshgrid(np.linspace(lo[0], hi[0], 300), np.linspace(lo[1], hi[1], 300))
    grid_cells = ((np.stack([xs, ys], -1)[..., None, :] - centres) ** 2).sum(-1).argmin(-1)
    inside = np.isin(grid_cells, probed).astype(float)
    ax.contourf(xs, ys, inside, levels=[-0.5, 0.5, 1.5],
                colors=["white", PALETTE["sky"]], alpha=0.35)
    ax.contour(xs, ys, grid_cells, levels=np.arange(n_cells) + 0.5, colors="grey",
               linewidths=0.8)
    searched = np.isin(cell, probed)
    ax.scatter(*points[~searched].T, s=9, color="lightgrey", label="skipped")
    ax.scatter(*points[searched].T, s=12, color=PALETTE["blue"], label="compared")
    ax.scatter(*centres.T, marker="X", s=90, color=PALETTE["black"], label="centroid")
    ax.scatter(*query, marker="*", s=300, color=PALETTE["vermillion"], zorder=5, label="query")
    ax.set_title(f"IVF: {n_cells} cells, nprobe {nprobe}", fontsize=12)
    ax.set(xticks=[], yticks=[], xlim=(lo[0], hi[0]), ylim=(lo[1], hi[1]))
    ax.grid(False)
    ax.legend(loc="lower left", fontsize=10, framealpha=0.9)

    order = rng.permutation(n_points)[:48]          # HNSW: fewer nodes, so the graph reads
    far = int(np.argmax(((points[order] - query) ** 2).sum(-1)))
    order[[0, far]] = order[[far, 0]]               # the entry point: far from the query
    layers = [list(order[:4]), list(order[:12]), list(order)]   # top layer first, nested
    paths = hnsw_greedy_path(points, layers, query)
    for row, (layer, path) in enumerate(zip(layers, paths)):
        axl = fig.add_subplot(grid[row, 1])
        links = _neighbours(points, layer, 3)
        for i, nbrs in links.items():
            for j in nbrs:
                axl.plot(*points[[i, j]].T, color="grey", lw=0.6, zorder=1)
        axl.scatter(*points[layer].T, s=14, color=PALETTE["blue"], zorder=2)
        axl.plot(*points[path].T, color=PALETTE["vermillion"], lw=2.2, zorder=3)
        axl.scatter(*points[path[0]], s=70, facecolor="none", edgecolor=PALETTE["vermillion"],
                    lw=2, zorder=4)
        axl.scatter(*query, marker="*", s=160, color=PALETTE["vermillion"], zorder=5)
        axl.set(xticks=[], yticks=[], xlim=(lo[0], hi[0]), ylim=(lo[1], hi[1]))
        axl.grid(False)
        axl.text(0.01, 0.97, f"layer {len(layers) - 1 - row}: {len(layer)} nodes",
                 transform=axl.transAxes, va="top", fontsize=10,
                 bbox={"fc": "white", "ec": "none", "alpha": 0.8})
        if row == 0:
            axl.set_title("HNSW: greedy path, top layer down", fontsize=12)
    return fig


def maxsim_heatmap(query_tokens: Sequence[str], doc_tokens: Sequence[str], sims,
                   figsize=(9, 4.2)):
    """Cosine similarity of every query token (rows) with every chunk token (columns); each
    row's best match is boxed and written at the right; MaxSim is the sum of those."""
    sims = np.asarray(sims, dtype=float)
    if sims.shape != (len(query_tokens), len(doc_tokens)):
        raise ValueError(f"maxsim_heatmap: sims has shape {sims.shape}, expected "
                         f"({len(query_tokens)}, {len(doc_tokens)}) query x chunk tokens")
    fig, ax = plt.subplots(figsize=figsize)
    image = ax.imshow(sims, cmap=SEQUENTIAL_CMAP, aspect="auto", vmin=min(0.0, sims.min()),
                      vmax=1)
    best = sims.argmax(1)
    for r, c in enumerate(best):
        ax.add_patch(plt.Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False,
                                   ec=PALETTE["vermillion"], lw=2))
        ax.text(len(doc_tokens) - 0.3, r, f"{sims[r, c]:.2f}", va="center", fontsize=10)
    ax.set_yticks(range(len(query_tokens)), query_tokens, fontsize=10)
    ax.set_xticks(range(len(doc_tokens)), doc_tokens, rotation=60, ha="right", fontsize=10)
    ax.set_xlim(-0.5, len(doc_tokens) + 0.9)
    ax.grid(False)
    ax.set_title(f"MaxSim = sum of the boxed best matches = {sims.max(1).sum():.2f}",
                 fontsize=12)
    ax.set_xlabel("chunk tokens", fontsize=11)
    ax.set_ylabel("question tokens", fontsize=11)
    fig.colorbar(image, ax=ax, fraction=0.03, pad=0.02, label="cosine similarity")
    fig.tight_layout()
    return fig
