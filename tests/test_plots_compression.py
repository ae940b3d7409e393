"""The pictures of page 6b draw what the page says they show, with readable labels."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from course_lib.plots.compression import (  # noqa: E402
    size_vs_perplexity,
    soft_targets,
    speculative_step,
    structured_pruning,
)


def _texts(fig):
    return " ".join(t.get_text() for ax in fig.axes for t in ax.texts)


def _legend(fig):
    return [t.get_text() for ax in fig.axes if ax.get_legend()
            for t in ax.get_legend().get_texts()]


def _fonts_readable(fig, smallest=9):
    texts = [t for ax in fig.axes for t in ax.texts + ax.get_xticklabels()]
    return min(t.get_fontsize() for t in texts if t.get_text()) >= smallest and \
        fig.get_figwidth() <= 9


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def test_speculative_step_draws_the_rejection_and_the_bonus_token():
    fig = speculative_step(k=4, rejected_at=2)
    text = _texts(fig)
    for label in ("draft proposes", "target: one pass scores all 5 positions", "$r$", "$b$",
                  "residual", "bonus token", "$d_4$", "discarded"):
        assert label in text, label
    assert text.count("draft proposes") == 2          # the two cases, one above the other
    assert _legend(fig) == ["drafted", "accepted", "rejected", "sampled by the target"]
    assert _fonts_readable(fig)
    # the accepted boxes (green) number rejected_at above and k below
    green = matplotlib.colors.to_rgba("#009E73")
    n_green = sum(1 for p in fig.axes[0].patches if p.get_facecolor() == green)
    assert n_green == 2 + 4


@pytest.mark.parametrize("kwargs", [{"k": 0}, {"k": 4, "rejected_at": 4}, {"prompt": ()}])
def test_speculative_step_rejects_bad_input(kwargs):
    with pytest.raises(ValueError, match="speculative_step"):
        speculative_step(**kwargs)


def test_soft_targets_draws_one_bar_group_per_temperature():
    logits = torch.tensor([4.0, 2.0, 1.0, 0.0, -1.0, -3.0])
    fig = soft_targets(logits, (1, 2, 4), labels=list("abcdef"), top=3)
    ax = fig.axes[0]
    assert _legend(fig) == ["T = 1", "T = 2", "T = 4"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["'a'", "'b'", "'c'", "other 3"]
    heights = np.array([p.get_height() for p in ax.patches]).reshape(3, 4)
    assert np.allclose(heights.sum(1), 1)             # each temperature's bars sum to 1
    assert heights[0, 0] > heights[1, 0] > heights[2, 0]   # higher T: a smaller top bar
    assert _fonts_readable(fig)
    with pytest.raises(ValueError, match="soft_targets"):
        soft_targets(logits, (0,))
    with pytest.raises(ValueError, match="soft_targets"):
        soft_targets(logits, labels=["a"])


def test_structured_pruning_crosses_out_rows_of_w1_and_columns_of_w2():
    w1, w2 = np.ones((6, 4)), np.ones((4, 6))
    fig = structured_pruning(w1, w2, [1, 4])
    ax1, ax2 = fig.axes
    rows = sorted(p.get_y() + 0.5 for p in ax1.patches)
    cols = sorted(p.get_x() + 0.5 for p in ax2.patches)
    assert rows == cols == [1, 4]
    assert all(p.get_width() == 4 for p in ax1.patches)        # a whole row of W1
    assert all(p.get_height() == 4 for p in ax2.patches)       # a whole column of W2
    assert "fc1.weight" in ax1.get_title() and "fc2.weight" in ax2.get_title()
    assert "2 of 6 hidden units removed" in fig._suptitle.get_text()
    with pytest.raises(ValueError, match="structured_pruning"):
        structured_pruning(w1, np.ones((6, 4)), [1])
    with pytest.raises(ValueError, match="structured_pruning"):
        structured_pruning(w1, w2, [6])


def test_size_vs_perplexity_joins_the_pareto_front_and_labels_every_point():
    points = [("dense", 400.0, 10.0, 10.0, 10.0), ("small, good", 100.0, 11.0, 10.5, 11.5),
              ("tiny, worse", 50.0, 14.0, 13.0, 15.0), ("dominated", 200.0, 12.0, 11.0, 13.0),
              ("other model", 30.0, 9.0, 8.5, 9.5, (-8, 0))]
    fig = size_vs_perplexity(points, baseline=10.0, front_excludes=["other model"])
    ax = fig.axes[0]
    for name, *_ in points:
        assert name in _texts(fig)
    front = ax.lines[0]
    assert list(front.get_xdata()) == [50.0, 100.0, 400.0]    # "dominated" is not on it
    assert list(front.get_ydata()) == [14.0, 11.0, 10.0]
    assert _fonts_readable(fig)
    with pytest.raises(ValueError, match="size_vs_perplexity"):
        size_vs_perplexity([("x", 1.0, 5.0, 6.0, 7.0)])       # ppl outside its interval
    with pytest.raises(ValueError, match="size_vs_perplexity"):
        size_vs_perplexity(points, front_excludes=["nobody"])
