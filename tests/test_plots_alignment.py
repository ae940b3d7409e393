"""The diagrams of page 5b draw, with the labels the page's text refers to."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from course_lib.plots.alignment import pipelines, reward_curves, reward_head  # noqa: E402


def _texts(fig):
    return " ".join(t.get_text() for ax in fig.axes for t in ax.texts)


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def test_pipelines_draws_both_methods():
    fig = pipelines()
    text = _texts(fig)
    for label in ("RLHF", "DPO", "reward model", "Bradley-Terry", "KL penalty", "reference",
                  "DPO loss", "policy", "preference"):
        assert label in text, label
    assert text.count("policy") >= 2 and text.count("preference") == 2   # one per row


def test_reward_head_reads_the_last_real_token():
    fig = reward_head([" Tom", " was", " glad", "."], n_pad=3, value=1.5)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.texts]
    assert labels.count("pad") == 3 and "glad" in labels and "." in labels
    text = _texts(fig)
    assert "last real token" in text and "linear head" in text and "1.50" in text
    assert "never read" in text
    assert "never read" not in _texts(reward_head(["a", "b"], n_pad=0))   # nothing padded


def test_reward_head_rejects_bad_input():
    with pytest.raises(ValueError, match="reward_head: tokens"):
        reward_head([])
    with pytest.raises(ValueError, match="reward_head: n_pad"):
        reward_head(["a"], n_pad=-1)


def test_reward_curves_marks_the_best_checkpoint():
    fig = reward_curves([0, 5, 10], [0.1, 0.8, 1.5], [20, 60, 40], best=1, n_prompts=12)
    left, right = fig.axes
    assert list(left.lines[0].get_ydata()) == [20, 60, 40]
    assert list(right.lines[0].get_ydata()) == [0.1, 0.8, 1.5]
    assert "step 5" in _texts(fig)
    assert "12 prompts" in left.get_legend().get_title().get_text()
    with pytest.raises(ValueError, match="reward_curves: best"):
        reward_curves([0, 5], [0.1, 0.2], [1, 2], best=2)
    with pytest.raises(ValueError, match="reward_curves: steps"):
        reward_curves([0, 5], [0.1], [1, 2], best=0)
