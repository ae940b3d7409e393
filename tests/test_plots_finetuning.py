"""Chapter 5's diagrams draw, carry the labels the prose refers to, and refuse bad input."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from course_lib.plots.finetuning import adapter_swap, memory_bars, qlora_flow  # noqa: E402


def _texts(fig):
    out = []
    for ax in fig.axes:
        out += [t.get_text() for t in ax.texts]
        legend = ax.get_legend()
        if legend is not None:
            out += [t.get_text() for t in legend.get_texts()]
        out += [t.get_text() for t in ax.get_xticklabels()]
    return " | ".join(out)


def _small_fonts(fig):
    return [t.get_text() for ax in fig.axes for t in ax.texts if t.get_fontsize() < 9]


def test_qlora_flow_shows_the_frozen_4bit_weight_and_the_trained_adapter():
    fig = qlora_flow()
    text = _texts(fig)
    for label in ("NF4", "dequantize", "r × d_in", "d_out × r", "no gradient", "into A and B"):
        assert label in text, label
    assert fig.get_size_inches()[0] <= 9 and not _small_fonts(fig)
    plt.close(fig)


def test_adapter_swap_shows_one_base_and_one_adapter_per_task():
    fig = adapter_swap(["who-what", "where-how", "maths"], 3_900, [16, 16, 32], active=1)
    text = _texts(fig)
    assert text.count("shared base") == 1 and "3,900 KiB" in text
    for task in ("who-what", "where-how", "maths"):
        assert task in text
    assert text.count("serving now") == 1
    assert fig.get_size_inches()[0] <= 9 and not _small_fonts(fig)
    plt.close(fig)
    with pytest.raises(ValueError, match="adapter_swap"):
        adapter_swap(["a", "b"], 10, [1])
    with pytest.raises(ValueError, match="active"):
        adapter_swap(["a"], 10, [1], active=1)


def test_memory_bars_stack_the_four_parts():
    mib = 2**20
    parts = {"full": {"weights": 4 * mib, "gradients": 4 * mib, "optimizer": 8 * mib,
                      "activations": 30 * mib},
             "LoRA": {"weights": 4 * mib, "gradients": mib // 10, "optimizer": mib // 5,
                      "activations": 30 * mib}}
    fig = memory_bars(parts, {"full": 40 * mib, "LoRA": 28 * mib})
    text = _texts(fig)
    for label in ("weights", "gradients", "optimizer state", "saved activations", "full",
                  "LoRA"):
        assert label in text, label
    ax = fig.axes[0]
    tops = [p.get_y() + p.get_height() for p in ax.patches]
    assert max(tops) == pytest.approx(46)                 # the stack of the full bar, in MiB
    plt.close(fig)
    with pytest.raises(ValueError, match="memory_bars"):
        memory_bars({"full": {"weights": 1}})
    with pytest.raises(ValueError, match="peaks"):
        memory_bars(parts, {"full": 1})
