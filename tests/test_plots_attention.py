"""The diagrams of page 4 draw, with the labels the page's text refers to."""

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from course_lib import flash  # noqa: E402
from course_lib.plots.attention_diagrams import (  # noqa: E402
    attention_kernels,
    head_sharing,
    kv_cache_growth,
    memory_hierarchy,
    online_softmax_rescaling,
    online_softmax_steps,
)


def _texts(fig):
    return " ".join(t.get_text() for ax in fig.axes for t in ax.texts) + " ".join(
        t.get_text() for t in fig.texts) + " ".join(ax.get_title() for ax in fig.axes)


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def test_memory_hierarchy_shows_both_levels_with_the_given_figures():
    fig = memory_hierarchy(hbm="HBM: 80 GB, 2 TB/s", sram="SRAM: 192 KB", compute="312 TF")
    text = _texts(fig)
    for label in ("HBM (main memory)", "SRAM (on chip)", "compute units", "HBM: 80 GB, 2 TB/s",
                  "SRAM: 192 KB", "312 TF"):
        assert label in text, label
    with pytest.raises(TypeError, match="memory_hierarchy: hbm"):
        memory_hierarchy(hbm=80)


def test_attention_kernels_draws_three_kernels_against_one():
    text = _texts(attention_kernels())
    for label in ("1: S = QKᵀ", "2: P = softmax(S)", "3: O = PV", "HBM", "one kernel, in SRAM",
                  "no n × n matrix is ever written to HBM"):
        assert label in text, label
    assert text.count("HBM") >= 4


def test_online_softmax_steps_match_the_library():
    x = [2.0, -1.0, 5.0, 0.5, 3.0, 6.0]
    steps = online_softmax_steps(x, 2)
    _, history = flash.online_softmax(torch.tensor(x, dtype=torch.float64), tile_size=2)
    assert [st["m"] for st in steps] == [h[0].item() for h in history]   # maxima: exact
    for st, (_, s) in zip(steps, history, strict=True):
        assert math.isclose(st["s"], s.item(), rel_tol=1e-12)
    assert steps[0]["m_old"] == -math.inf and steps[1]["factor"] == pytest.approx(math.exp(-3))
    with pytest.raises(ValueError, match="online_softmax_steps: tile"):
        online_softmax_steps(x, 0)


def test_online_softmax_rescaling_labels_every_tile():
    text = _texts(online_softmax_rescaling([2.0, -1.0, 5.0, 0.5, 3.0, 6.0], 2))
    for label in ("tile 1", "tile 3", "m = 5", "m = 6", "× 0.050", "× 0.368", "running sum"):
        assert label in text, label


def test_head_sharing_connects_each_query_head_to_its_group():
    fig = head_sharing(8, kv_heads=(8, 2, 1))
    assert [ax.get_title() for ax in fig.axes] == ["MHA: 8 K/V heads", "GQA-2: 2 K/V heads",
                                                   "MQA: 1 K/V head"]
    gqa = fig.axes[1]
    assert sum(t.get_text().startswith("q") for t in gqa.texts) == 8
    assert sorted(t.get_text() for t in gqa.texts if t.get_text().startswith("kv")) == [
        "kv0", "kv1"]
    assert len(gqa.lines) == 8                      # one line per query head
    assert "4 query heads per K/V head" in _texts(fig)
    with pytest.raises(ValueError, match="head_sharing: kv_heads 3"):
        head_sharing(8, kv_heads=(3,))


def test_kv_cache_growth_adds_one_column_per_step():
    fig = kv_cache_growth(prompt_len=4, steps=3)
    text = _texts(fig)
    assert "after the prompt" in text and "decode step 3" in text
    assert "query of token 7 reads 7 K and 7 V" in text
    assert len(fig.axes) == 4
    with pytest.raises(TypeError, match="kv_cache_growth: steps"):
        kv_cache_growth(steps=1.5)
