"""The diagrams of chapter 2 draw, with the labels the page's text refers to, and the ring
schedule they draw is the all-reduce it claims to be."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from course_lib.plots.memory_diagrams import (  # noqa: E402
    mixed_precision_flow,
    ring_all_reduce_states,
    ring_all_reduce_steps,
    step_memory_bars,
)


def _texts(fig):
    return [t.get_text() for ax in fig.axes for t in ax.texts]


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


@pytest.mark.parametrize("n", [2, 3, 4, 5])
def test_ring_states_end_with_every_device_holding_the_full_sum(n):
    states = ring_all_reduce_states(n)
    assert len(states) == 1 + 2 * (n - 1)
    everyone = frozenset(range(n))
    # after reduce-scatter device r holds the complete sum of chunk (r + 1) % n, only that one
    mid = states[n - 1]["chunks"]
    for r in range(n):
        assert [c == everyone for c in mid[r]] == [k == (r + 1) % n for k in range(n)]
    assert all(c == everyone for dev in states[-1]["chunks"] for c in dev)
    # every step every device sends exactly one chunk: 2 (n - 1) chunks each in all
    assert all(len(st["sent"]) == n for st in states[1:])


def test_ring_diagram_labels_both_phases_and_every_device():
    text = _texts(ring_all_reduce_steps(4))
    joined = " ".join(text)
    for label in ("start: own values", "reduce-scatter step 1", "reduce-scatter step 3",
                  "all-gather step 1", "all-gather step 3", "device 0", "device 3"):
        assert label in joined, label
    full = sum(len(c) == 4 for st in ring_all_reduce_states(4) for dev in st["chunks"]
               for c in dev)
    # one full chunk per device after reduce-scatter, one more per all-gather step
    assert text.count("all") == full == 4 * (1 + 2 + 3 + 4)
    assert "0" in text and "01" in text and "0123" not in text   # a full chunk says "all"


def test_mixed_precision_flow_names_each_stage_and_its_bytes():
    joined = " ".join(_texts(mixed_precision_flow()))
    for label in ("fp32 master weights", "16-bit weights", "cast to", "16-bit gradients",
                  "Adam moments", "fp32 update", "4 B / parameter", "2 B / parameter"):
        assert label in joined, label


def test_step_memory_bars_stack_the_four_parts():
    steps = {"a": dict(weights=1e6, gradients=1e6, optimizer=2e6, activations=3e6, total=7e6),
             "b": dict(weights=1e6, gradients=1e6, optimizer=2e6, activations=10e6)}
    fig = step_memory_bars(steps)
    ax = fig.axes[0]
    assert len(ax.patches) == 4 * 2
    assert [t.get_text() for t in ax.texts] == ["7.0", "14.0"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "weights", "gradients", "optimizer states (Adam)", "activations"]


@pytest.mark.parametrize("bad, err", [({}, ValueError), ({"a": {"weights": 1}}, ValueError),
                                      ({1: {}}, TypeError),
                                      ({"a": dict(weights=-1, gradients=0, optimizer=0,
                                                  activations=0)}, ValueError)])
def test_step_memory_bars_rejects_bad_input(bad, err):
    with pytest.raises(err, match="step_memory_bars"):
        step_memory_bars(bad)


@pytest.mark.parametrize("bad, err", [(1, ValueError), (9, ValueError), (2.5, TypeError),
                                      (True, TypeError)])
def test_ring_rejects_bad_device_counts(bad, err):
    with pytest.raises(err, match="n_devices"):
        ring_all_reduce_states(bad)
