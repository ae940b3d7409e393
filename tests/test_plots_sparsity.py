"""Chapter 6's figures: the OBS step on two weights, RTN against GPTQ over bits, the lazy
blocks. Each draws what its caption says, and rejects what it cannot draw."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from course_lib.plots.sparsity import bits_curve, lazy_blocks, obs_contour  # noqa: E402


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


H = np.array([[2.0, 1.5], [1.5, 2.0]])


def test_obs_contour_writes_each_points_loss():
    fig, ax = plt.subplots()
    w = np.array([0.37, 0.61])
    pts = {"RTN": [0.25, 0.5], "OBS": [0.25, 0.7]}
    losses = obs_contour(ax, H, w, pts, step=0.25)
    for label, p in pts.items():
        d = np.asarray(p) - w
        assert losses[label] == pytest.approx(0.5 * d @ H @ d, rel=1e-12)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert f"RTN: E = {losses['RTN']:.2g}" in legend and "original w: E = 0" in legend
    assert any(t.startswith("OBS: E = ") for t in legend) and "grid points" in legend
    assert ax.get_xlabel() == "weight $w_1$" and ax.get_aspect() == 1.0
    assert isinstance(fig, plt.Figure)


@pytest.mark.parametrize("bad", [np.array([[1.0, 2.0], [2.0, 1.0]]),   # indefinite
                                 np.array([[1.0, 0.5], [0.0, 1.0]]),   # not symmetric
                                 np.eye(3)])
def test_obs_contour_rejects_a_hessian_it_cannot_draw(bad):
    _, ax = plt.subplots()
    with pytest.raises(ValueError, match="obs_contour: h"):
        obs_contour(ax, bad, [0.0, 0.0], {"p": [1.0, 1.0]})


def test_obs_contour_rejects_bad_points():
    _, ax = plt.subplots()
    with pytest.raises(ValueError, match="points is empty"):
        obs_contour(ax, H, [0.0, 0.0], {})
    with pytest.raises(ValueError, match="points\\['p'\\]"):
        obs_contour(ax, H, [0.0, 0.0], {"p": [1.0, float("nan")]})


def test_bits_curve_draws_one_line_per_method_and_the_dense_line():
    _, ax = plt.subplots()
    bits_curve(ax, [4, 3, 2], {"RTN per row": [20, 25, 90], "GPTQ per row": [20, 22, 40]}, 19.0)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["RTN per row", "GPTQ per row", "dense (fp32)"]
    assert ax.get_yscale() == "log" and ax.xaxis_inverted()
    with pytest.raises(ValueError, match="curves\\['RTN'\\] has 2 values"):
        bits_curve(ax, [4, 3, 2], {"RTN": [1.0, 2.0]}, 1.0)


def test_lazy_blocks_labels_the_four_kinds_of_column():
    _, ax = plt.subplots()
    lazy_blocks(ax, n_cols=8, block=4, current=1)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["done (fixed)", "current column", "rest of block: updated now",
                      "later blocks: updated once"]
    with pytest.raises(ValueError, match="lazy_blocks"):
        lazy_blocks(ax, n_cols=4, current=4)
