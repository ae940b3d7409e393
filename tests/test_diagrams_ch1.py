"""course_lib.plots, chapter 1 section: structure diagrams (including transformer_diagrams'
data flows) and figure-reading helpers."""

import io

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from course_lib import plots  # noqa: E402
from course_lib.plots.transformer_diagrams import (  # noqa: E402
    multihead_diagram,
    qkv_diagram,
    shift_diagram,
)


@pytest.fixture(autouse=True)
def _close():
    with matplotlib.rc_context():
        plots.use_style()
        yield
    plt.close("all")


def _texts(fig):
    return [t.get_text() for ax in fig.axes for t in ax.texts]


def _renders(fig):
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getbuffer().nbytes > 1000


STAGES = [("text", "'Tom found a'", "data"), ("token ids", "3 ids", "data"),
          ("embeddings", "(1, 3, 128)", "embed"), ("4 × Block", "(1, 3, 128)", "attn"),
          ("lm_head", "(1, 3, 512)", "head"), ("next token", "' red'", "data")]


def test_pipeline_draws_every_stage_in_order_with_arrows():
    fig = plots.pipeline_diagram(STAGES, repeat_index=3, n_repeat=4)
    texts = _texts(fig)
    for name, detail, _ in STAGES:
        assert name in texts and detail in texts
    ax = fig.axes[0]
    xs = [t.get_position()[0] for t in ax.texts if t.get_text() in [s[0] for s in STAGES]]
    assert xs == sorted(xs)                                     # left to right, in order
    arrows = [c for c in ax.texts if c.get_text() == "" and hasattr(c, "arrow_patch")]
    assert len(arrows) == len(STAGES) - 1                       # one arrow between neighbours
    # the repeated stage is a stack: 1 box + 3 shadows; every other stage one box
    assert len(ax.patches) == len(STAGES) + 3
    assert _renders(fig)


@pytest.mark.parametrize("bad", [[], [STAGES[0]], [("a", "b", "nonsense"), STAGES[1]],
                                 [("a", "b"), STAGES[1]]])
def test_pipeline_rejects_bad_stages(bad):
    with pytest.raises(ValueError, match="stages"):
        plots.pipeline_diagram(bad)


@pytest.mark.parametrize("kw", [dict(repeat_index=6), dict(repeat_index=-1),
                                dict(repeat_index=1.5), dict(n_repeat=0),
                                dict(n_repeat=2.5)])
def test_pipeline_rejects_bad_repeat(kw):
    with pytest.raises(ValueError):
        plots.pipeline_diagram(STAGES, **kw)


def test_block_diagram_names_the_attributes_of_models_block():
    from course_lib.models import Block, GPTConfig

    block = Block(GPTConfig(d_model=16, n_head=2), cross_attention=True)
    for cross in (False, True):
        text = " ".join(_texts(plots.block_diagram(cross_attention=cross)))
        names = ["ln1", "attn", "ln2", "mlp"] + (["ln_cross", "cross_attn"] if cross else [])
        for name in names:
            assert f"[{name}]" in text and hasattr(block, name)
        assert ("cross_attn" in text) == cross
        # one "+" per residual connection: 2 without cross-attention, 3 with it
        assert text.split().count("+") == (3 if cross else 2)
    with pytest.raises(TypeError, match="cross_attention"):
        plots.block_diagram(cross_attention="yes")


def test_families_diagram_maps_onto_the_course_classes():
    from course_lib import models

    fig = plots.families_diagram()
    text = " ".join(_texts(fig))
    for cls in ("EncoderModel", "GPT", "EncoderDecoder"):
        assert cls in text and hasattr(models, cls)
    for term in ("autoencoding", "autoregressive", "cross_attn", "ln_enc", "mlm_head"):
        assert term in text
    assert _renders(fig)


def test_mark_cell_outlines_exactly_the_cell():
    fig, ax = plt.subplots()
    plots.heatmap(ax, np.eye(4, 5))
    rect = plots.mark_cell(ax, 2, 3)
    assert (rect.get_x(), rect.get_y(), rect.get_width(), rect.get_height()) == (2.5, 1.5, 1, 1)
    for bad in ((4, 0), (0, 5), (-1, 0), (1.5, 0), (True, 0)):
        with pytest.raises(ValueError, match="mark_cell"):
            plots.mark_cell(ax, *bad)


def test_place_labels_never_overlap_and_skip_what_cannot_fit():
    rng = np.random.default_rng(0)
    fig, ax = plt.subplots(figsize=(4, 3))
    xy = rng.normal(size=(60, 2)) * 0.3                         # a crowded cloud
    ax.scatter(*xy.T)
    ax.set_xlim(-1.5, 1.5)
    ax.set_ylim(-1.5, 1.5)
    labels = [f"word{i}" for i in range(60)]
    placed = plots.place_labels(ax, xy, labels)
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in placed]
    assert 5 < len(placed) < 60                                 # some placed, some left out
    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            assert not boxes[i].overlaps(boxes[j]), (placed[i].get_text(), placed[j].get_text())
    # a sparse set: every label fits
    fig2, ax2 = plt.subplots()
    sparse = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 0.0]])
    ax2.set_xlim(-1, 3)
    ax2.set_ylim(-1, 2)
    assert len(plots.place_labels(ax2, sparse, ["a", "b", "c"])) == 3


@pytest.mark.parametrize("xy, labels", [(np.zeros((3, 3)), ["a"] * 3),
                                        (np.zeros((3, 2)), ["a"] * 2),
                                        (np.array([[0.0, np.nan]]), ["a"])])
def test_place_labels_rejects_bad_input(xy, labels):
    fig, ax = plt.subplots()
    with pytest.raises(ValueError, match="place_labels"):
        plots.place_labels(ax, xy, labels)


# ------------------------------------------ transformer_diagrams: Q/K/V, heads, shift
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
