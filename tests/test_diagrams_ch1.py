"""course_lib.plots, chapter 1 section: structure diagrams and figure-reading helpers."""

import io

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from course_lib import plots  # noqa: E402


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
