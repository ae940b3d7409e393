"""The figures of chapter 7b draw, carry the labels the page's captions talk about, and keep
their text readable at the book's width (about 800 px)."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from course_lib.plots import agents  # noqa: E402


def _texts(fig):
    return [t.get_text() for ax in fig.axes for t in ax.texts] + [
        t.get_text() for ax in fig.axes for t in ax.get_xticklabels()]


def _readable(fig, page_px=800, min_px=11):
    """Every text is at least ``min_px`` pixels tall once the figure is scaled to the page."""
    width_in = fig.get_size_inches()[0]
    sizes = [t.get_fontsize() for ax in fig.axes for t in ax.texts]
    return min(sizes) * page_px / (width_in * 72) >= min_px


def test_agent_loop_draws_the_steps_of_the_loop():
    fig = agents.agent_loop()
    text = " ".join(_texts(fig))
    for label in ("question", "Thought + Action", "schema", "tool runs", "Observation",
                  "Final\nAnswer"):
        assert label in text, label
    assert fig.get_size_inches()[0] <= 9 and _readable(fig)
    plt.close(fig)


def test_injection_path_shows_the_attack_and_the_filter():
    fig = agents.injection_path("555-0199")
    text = " ".join(_texts(fig))
    for label in ("Observation:\n555-0199", "search tool", "drop_transcript_lines",
                  "forged step", "answer from\nthe register"):
        assert label in text, label
    assert fig.get_size_inches()[0] <= 9 and _readable(fig)
    plt.close(fig)
    with pytest.raises(ValueError, match="payload"):
        agents.injection_path("")


def test_context_budget_stacks_the_parts_of_each_step():
    fig, ax = plt.subplots(figsize=(6, 3))
    segments = [{"question": 50, "actions": 30}, {"question": 50, "actions": 60,
                                                  "observations": 40}]
    agents.context_budget(ax, segments, 128, title="t")
    tops = {}
    for patch in ax.patches:  # each bar's height adds up to the step's total
        x = round(patch.get_x() + patch.get_width() / 2)
        tops[x] = max(tops.get(x, 0), patch.get_y() + patch.get_height())
    assert tops == {1: 80, 2: 150}
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["question", "actions",
                                                                  "observations"]
    assert any("128" in t.get_text() for t in ax.texts)
    plt.close(fig)
    for bad in ([], [{}], "x"):
        with pytest.raises(ValueError, match="segments"):
            agents.context_budget(ax, bad, 128)
    with pytest.raises(ValueError, match="block"):
        agents.context_budget(ax, segments, 0)


def test_copy_attention_circles_the_targets():
    fig, ax = plt.subplots(figsize=(4, 3))
    agents.copy_attention(ax, np.eye(3), ["a", "b", "c"], ["x", "y", "z"], [(0, 1), (1, 2)])
    assert len(ax.collections) == 2
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b", "c"]
    plt.close(fig)
