"""Chapter 7's pictures draw, with the labels a reader needs, readable at the page's width."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from course_lib.plots.flow import flow_diagram  # noqa: E402
from course_lib.plots.retrieval import (  # noqa: E402
    chunk_spans,
    hnsw_greedy_path,
    ivf_hnsw,
    maxsim_heatmap,
)


def _texts(fig):
    return [t.get_text() for ax in fig.axes for t in ax.texts + [ax.title]
            + ax.get_yticklabels() + ax.get_xticklabels() + [ax.xaxis.label, ax.yaxis.label]]


def _smallest_px(fig):
    """The smallest label's size in pixels on an 800-pixel-wide page column."""
    width = fig.get_size_inches()[0]
    sizes = [t.get_fontsize() for ax in fig.axes for t in ax.texts + [ax.title]
             + ax.get_yticklabels() + ax.get_xticklabels() if t.get_text()]
    return min(sizes) * 800 / (width * 72)


def test_pipeline_in_two_rows_draws_every_box_readably():
    fig, ax = plt.subplots(figsize=(9, 2.6))
    boxes = ["documents", "chunk", "index", "recall", "rerank", "reader", "answer"]
    flow_diagram(ax, boxes, title="RAG", rows=2, fontsize=12)
    assert set(boxes) <= set(_texts(fig))
    xs = {t.get_text(): t.get_position() for t in ax.texts}
    assert xs["rerank"][1] < xs["documents"][1]          # the second row is below the first
    assert _smallest_px(fig) >= 12
    with pytest.raises(ValueError, match="flow_diagram: rows"):
        flow_diagram(ax, boxes, rows=0)
    with pytest.raises(ValueError, match="flow_diagram: loop_back needs rows=1"):
        flow_diagram(ax, boxes, rows=2, loop_back=True)
    plt.close("all")


def test_chunk_spans_labels_each_setting():
    fig = chunk_spans("One sentence here. Another one follows it. " * 8, [(60, 0), (60, 20)])
    labels = " ".join(_texts(fig))
    assert "no overlap" in labels and "overlap 20" in labels
    assert _smallest_px(fig) >= 12
    plt.close("all")


def test_ivf_hnsw_draws_both_indexes_and_the_greedy_path_gets_closer():
    fig = ivf_hnsw(seed=0, n_cells=8, nprobe=2)
    labels = " ".join(_texts(fig))
    assert "IVF: 8 cells, nprobe 2" in labels and "HNSW" in labels
    assert "layer 0: 48 nodes" in labels and "layer 2: 4 nodes" in labels
    assert _smallest_px(fig) >= 12
    plt.close("all")
    rng = np.random.default_rng(1)
    points, query = rng.uniform(-1, 1, (30, 2)), np.zeros(2)
    layers = [list(range(3)), list(range(10)), list(range(30))]
    paths = hnsw_greedy_path(points, layers, query)
    dist = [((points[i] - query) ** 2).sum() for path in paths for i in path]
    assert all(a >= b for a, b in zip(dist, dist[1:]))   # each step is nearer the query
    assert [p[0] for p in paths[1:]] == [p[-1] for p in paths[:-1]]  # a layer starts where
    with pytest.raises(ValueError, match="ivf_hnsw: nprobe"):    # the one above stopped
        ivf_hnsw(nprobe=0)


def test_maxsim_heatmap_boxes_each_rows_best_and_sums_them():
    sims = np.array([[0.1, 0.9, 0.2], [0.5, 0.3, 0.4]])
    fig = maxsim_heatmap(["what", "music"], ["runa", "plays", "harp"], sims)
    labels = _texts(fig)
    assert "0.90" in labels and "0.50" in labels
    assert any("= 1.40" in t for t in labels)
    assert {"what", "music", "runa", "plays", "harp"} <= set(labels)
    with pytest.raises(ValueError, match="maxsim_heatmap: sims"):
        maxsim_heatmap(["a"], ["b", "c"], sims)
    plt.close("all")
