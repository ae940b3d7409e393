"""Chapter 3's structure diagrams draw, with the labels a reader needs, and reject bad input."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from course_lib.plots.quant_diagrams import (  # noqa: E402
    double_quant_hierarchy,
    llm_int8_split,
    scale_groups,
)


def _texts(fig):
    return [t.get_text() for ax in fig.axes for t in ax.texts + [ax.title, ax.xaxis.label]]


def test_scale_groups_counts_the_scales_of_each_scheme():
    fig = scale_groups(rows=8, cols=256, group_size=64)
    assert isinstance(fig, Figure) and len(fig.axes) == 3
    titles = [ax.get_title(loc="left") for ax in fig.axes]
    assert titles == ["per tensor: 1 scale", "per channel (row): 8 scales",
                      "per group of 64: 32 scales"]
    with pytest.raises(ValueError, match="group_size"):
        scale_groups(cols=100, group_size=64)
    with pytest.raises(TypeError, match="rows"):
        scale_groups(rows=2.5)


def test_double_quant_hierarchy_states_each_levels_cost():
    texts = " | ".join(_texts(double_quant_hierarchy(64, 256)))
    for label in ("64 weights", "1 absmax per 64 weights", "1 scale per 256 absmaxes",
                  "32/64 = 0.5", "8/64 = 0.125", "32/(64·256) = 0.0020", "4.5 without",
                  "4.127 with double"):
        assert label in texts, label
    texts = " | ".join(_texts(double_quant_hierarchy(128, 256)))
    assert "32/128 = 0.25" in texts and "4.25 without" in texts
    with pytest.raises(ValueError, match="group_size"):
        double_quant_hierarchy(0)


def test_llm_int8_split_highlights_the_outlier_columns_and_sums_the_parts():
    x = np.array([[1.0, 9.0, 0.0], [2.0, -1.0, -7.0]])
    w = np.array([[1.0, 2.0, 3.0], [0.0, 1.0, -1.0]])
    texts = _texts(llm_int8_split(x, w, 6.0))
    assert "X (tokens × in)" in texts and "Wᵀ (in × out)" in texts and "X Wᵀ" in texts
    assert any("column(s) 1, 2" in t for t in texts)
    # the last matrix drawn is the sum, cell by cell equal to x @ w.T
    end = texts.index("X Wᵀ")
    assert texts[end - 4:end] == [f"{v:.0f}" for v in (x @ w.T).flatten()]
    with pytest.raises(ValueError, match="x"):
        llm_int8_split(np.ones((2, 3)), np.ones((2, 4)))
    with pytest.raises(ValueError, match="threshold"):
        llm_int8_split(x, w, -1.0)
