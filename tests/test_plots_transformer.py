"""course_lib.plots.transformer_diagrams: chapter 1's data-flow diagrams draw what they say."""

import io

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from course_lib.plots import use_style  # noqa: E402
from course_lib.plots.transformer_diagrams import (  # noqa: E402
    multihead_diagram,
    qkv_diagram,
    shift_diagram,
)


@pytest.fixture(autouse=True)
def _close():
    with matplotlib.rc_context():
        use_style()
        yield
    plt.close("all")


def _texts(fig):
    return [t.get_text() for ax in fig.axes for t in ax.texts]


def _renders(fig):
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getbuffer().nbytes > 1000


def _smallest_font(fig):
    return min(t.get_fontsize() for ax in fig.axes for t in ax.texts if t.get_text())


def test_qkv_diagram_draws_the_whole_flow_with_its_shapes():
    fig = qkv_diagram(n_tokens=3, d_model=6, d_k=5)
    texts = _texts(fig)
    assert isinstance(fig, Figure)
    for label in ("$x$", "$W_Q$", "$W_K$", "$W_V$", "$Q$", "$K$", "$V$"):
        assert label in texts, label
    assert any("QK^\\top" in t and "sqrt{d_k}" in t for t in texts)
    assert any(t.startswith("softmax") for t in texts)
    assert any(t.startswith("weighted sum") for t in texts)
    assert "3 × 6" in texts and "3 × 5" in texts and "3 × 3" in texts   # x, Q/K/V, scores
    assert fig.get_figwidth() <= 9 and _smallest_font(fig) >= 9
    assert _renders(fig)


def test_multihead_diagram_splits_into_heads_and_concatenates():
    fig = multihead_diagram(n_heads=3, d_model=12)
    texts = _texts(fig)
    assert [t for t in texts if t.startswith("head ")] == [f"head {h}\nattends" for h in range(3)]
    assert "split: 3 heads × 4" in texts
    assert "concatenate: 12 numbers again" in texts and "$W_O$" in texts
    # two bars of 3 slices and 3 head boxes (the W_O box is a FancyBboxPatch)
    rects = [p for p in fig.axes[0].patches if type(p).__name__ == "Rectangle"]
    assert len(rects) == 3 * 3
    assert fig.get_figwidth() <= 9 and _smallest_font(fig) >= 9
    assert _renders(fig)


@pytest.mark.parametrize("kw", [dict(n_heads=3, d_model=16), dict(n_heads=0),
                                dict(n_heads=16, d_model=32), dict(d_model=2.5)])
def test_multihead_diagram_rejects_bad_sizes(kw):
    with pytest.raises(ValueError, match="multihead_diagram"):
        multihead_diagram(**kw)


def test_shift_diagram_moves_targets_one_place_and_ignores_padding():
    tokens = ["Once", " upon", " a", " time"]
    fig = shift_diagram(tokens, n_pad=2)
    ax = fig.axes[0]
    # the boxes' labels by row, left to right
    rows = {}
    for t in ax.texts:
        if t.get_text() and t.get_fontsize() == 10 and t.get_position()[0] > 2.3:
            rows.setdefault(round(t.get_position()[1], 2), []).append(
                (t.get_position()[0], t.get_text()))
    y_in, y_text, y_out = 5.0, 3.1, 1.0
    row = {y: [s for _, s in sorted(rows[y])] for y in (y_in, y_text, y_out)}
    assert row[y_text] == ["Once", "␣upon", "␣a", "␣time", "<pad>", "<pad>"]
    assert row[y_in] == ["Once", "␣upon", "␣a", "␣time", "<pad>"]
    assert row[y_out] == ["␣upon", "␣a", "␣time", "-100", "-100"]
    assert "no target: ignored" in _texts(fig)
    assert fig.get_figwidth() <= 9 and _smallest_font(fig) >= 9
    assert _renders(fig)


@pytest.mark.parametrize("args", [(["one"],), (["a", "b"], -1), (list("abcdefghijk"), 1),
                                  (["a", "b"], 1.5)])
def test_shift_diagram_rejects_bad_input(args):
    with pytest.raises(ValueError, match="shift_diagram"):
        shift_diagram(*args)
