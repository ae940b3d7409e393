"""course_lib.plots: the shared style and the heatmap used for attention maps."""

import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.colors import to_rgb  # noqa: E402

from course_lib import plots  # noqa: E402


@pytest.fixture(autouse=True)
def _clean_rcparams():
    with matplotlib.rc_context():
        yield
    plt.close("all")


def _relative_luminance(hex_color):
    def channel(c):
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in to_rgb(hex_color))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def test_palette_is_okabe_ito_and_distinct():
    colors = list(plots.PALETTE.values())
    assert len(colors) == 8
    assert len(set(colors)) == 8
    assert plots.PALETTE["blue"] == "#0072B2" and plots.PALETTE["vermillion"] == "#D55E00"
    # the first two series (blue, orange) must differ in brightness, not only in hue,
    # so they stay apart in greyscale print
    assert abs(_relative_luminance(colors[0]) - _relative_luminance(colors[1])) > 0.2


def test_use_style_sets_the_shared_look():
    plots.use_style()
    rc = matplotlib.rcParams
    assert rc["axes.spines.top"] is False and rc["axes.spines.right"] is False
    assert rc["figure.dpi"] == 110
    assert rc["font.size"] >= 10
    cycle = [c["color"] for c in rc["axes.prop_cycle"]]
    assert cycle[: len(plots.PALETTE)] == list(plots.PALETTE.values())
    fig, ax = plt.subplots()
    (line,) = ax.plot([0, 1], [0, 1])
    assert matplotlib.colors.same_color(line.get_color(), plots.PALETTE["blue"])
    assert not ax.spines["top"].get_visible()


def test_heatmap_draws_the_matrix_with_labels():
    plots.use_style()
    weights = torch.softmax(torch.randn(3, 4, generator=torch.Generator().manual_seed(0)), -1)
    fig, ax = plt.subplots()
    image = plots.heatmap(ax, weights, xlabels=["the", "cat", "sat", "down"],
                          ylabels=["a", "b", "c"], title="head 0", annotate=True)
    data = np.asarray(image.get_array())
    assert data.shape == (3, 4)
    np.testing.assert_allclose(data, weights.numpy(), rtol=1e-6)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["the", "cat", "sat", "down"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b", "c"]
    assert ax.get_title() == "head 0"
    texts = [t.get_text() for t in ax.texts]
    assert len(texts) == 12 and f"{weights[0, 0].item():.2f}" in texts
    assert len(fig.axes) == 2  # the heatmap and its colorbar
    fig.canvas.draw()  # renders without error


def test_style_leaves_the_layout_engine_to_the_chapter():
    # Chapters call fig.tight_layout(); with constrained layout switched on globally that
    # raises RuntimeError once a colorbar exists. The style must not switch it on.
    plots.use_style()
    fig, ax = plt.subplots()
    plots.heatmap(ax, np.eye(3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig.tight_layout()


def test_heatmap_skips_nan_cells_and_accepts_lists():
    fig, ax = plt.subplots()
    image = plots.heatmap(ax, [[1.0, float("nan")], [0.25, 0.75]], annotate=True,
                          colorbar=False)
    assert np.asarray(image.get_array()).shape == (2, 2)
    assert sorted(t.get_text() for t in ax.texts) == ["0.25", "0.75", "1.00"]
    assert len(fig.axes) == 1


@pytest.mark.parametrize(
    ("matrix", "kwargs", "message"),
    [
        (np.zeros(4), {}, "2-D"),
        (np.zeros((2, 2, 2)), {}, "2-D"),
        (np.zeros((0, 3)), {}, "empty"),
        (np.zeros((2, 3)), {"xlabels": ["a", "b"]}, "2 xlabels for 3"),
        (np.zeros((2, 3)), {"ylabels": ["a"]}, "1 ylabels for 2"),
        ([["a", "b"]], {}, "numeric"),
    ],
)
def test_heatmap_rejects_bad_input(matrix, kwargs, message):
    fig, ax = plt.subplots()
    with pytest.raises(ValueError, match=message):
        plots.heatmap(ax, matrix, **kwargs)
