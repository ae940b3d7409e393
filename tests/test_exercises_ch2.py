"""Exercises of page 2: every one has plausible wrong answers that fail with a useful
message, and the solutions agree with the course's own code."""

import math

import pytest

from course_lib import memory
from course_lib.exercises import get, list_exercises, solution
from course_lib.plots.memory_diagrams import ring_all_reduce_states

PAGE = 2


# ---- plausible wrong answers
def _act_kv_ignored(s, b, h, a, n_kv_heads=None, mode="stored"):
    """GQA forgotten: K and V kept at full size."""
    if mode == "recompute":
        return 2 * s * b * h
    return 34 * s * b * h + (5 * a * s * s * b if mode == "stored" else 0)


def _act_flash_keeps_masks(s, b, h, a, n_kv_heads=None, mode="stored"):
    """Right for 'stored', but flash keeps the s^2 dropout mask (1 of the 5 bytes)."""
    kv = a if n_kv_heads is None else n_kv_heads
    if mode == "recompute":
        return 2 * s * b * h
    base = 30 * s * b * h + 4 * s * b * (h // a) * kv
    return base + (5 if mode == "stored" else 1) * a * s * s * b


def _ring_one_phase(n_bytes, p, bandwidth, latency):
    return (p - 1) * (latency + n_bytes / (p * bandwidth))


def _ring_whole_tensor(n_bytes, p, bandwidth, latency):
    return 2 * (p - 1) * (latency + n_bytes / bandwidth)


def _min_devices_sharded_all(n_params, card_bytes, stage):
    """Treats every stage as if everything were sharded."""
    return max(1, math.ceil(16 * n_params / card_bytes))


def _min_devices_no_floor(n_params, card_bytes, stage):
    """Right formula, but never says that no number of devices is enough."""
    kept, sharded = {0: (16, 0), 1: (4, 12), 2: (2, 14), 3: (0, 16)}[stage]
    room = card_bytes - kept * n_params
    if sharded == 0:
        return 1
    return max(1, math.ceil(sharded * n_params / room)) if room > 0 else 10**9


WRONG = {
    "ch2.sgd_momentum_gb": [7e9 * 16 / 1e9, 7e9 * 8 / 1e9],     # Adam's 16; no master copy
    "ch2.layer_activations": [_act_kv_ignored, _act_flash_keeps_masks],
    "ch2.ring_seconds": [_ring_one_phase, _ring_whole_tensor],
    "ch2.zero_min_devices": [_min_devices_sharded_all, _min_devices_no_floor],
    "ch2.fsdp_trade": ["b", "c"],
}


def test_at_least_three_of_five_are_transfer_problems():
    exs = [get(i) for i in list_exercises(PAGE)]
    assert len(exs) == 5 and sum(ex.transfer for ex in exs) >= 3
    assert all(ex.why for ex in exs)


def test_sgd_momentum_solution_matches_the_library():
    states = memory.training_memory(7e9, "bf16", "sgd_momentum", recipe="mixed")
    assert solution("ch2.sgd_momentum_gb") == states["total"] / memory.GB == 84


@pytest.mark.parametrize("s, b, h, a, kv", [(2048, 1, 12288, 96, None), (4096, 1, 4096, 32, 8),
                                            (512, 8, 1024, 16, 1), (7, 3, 40, 5, 5)])
def test_layer_activations_solution_matches_the_library(s, b, h, a, kv):
    f = solution("ch2.layer_activations")
    assert f(s, b, h, a, kv) == memory.activation_memory(b, s, h, 1, a, n_kv_heads=kv)
    assert f(s, b, h, a, kv, mode="flash") == memory.activation_memory(
        b, s, h, 1, a, n_kv_heads=kv, flash=True)
    # full recomputation: what training_memory keeps per layer with checkpointing
    ckpt = memory.training_memory(1, "bf16", recipe="mixed", batch=b, seq=s, hidden=h,
                                  n_layers=1, n_heads=a, checkpointing=True)
    assert f(s, b, h, a, kv, mode="recompute") == ckpt["activations"]


@pytest.mark.parametrize("p", [2, 3, 4, 8, 64])
def test_ring_solution_counts_the_steps_and_bytes_of_the_library(p):
    f = solution("ch2.ring_seconds")
    n_bytes, bandwidth = 2 * 7e9, 50e9
    # no latency: the bytes each device sends (library) over the bandwidth
    sent = memory.communication_volume(7e9, p, "ddp", bytes_per_value=2)
    assert f(n_bytes, p, bandwidth, 0.0) == pytest.approx(sent / bandwidth, rel=1e-9)
    # no bandwidth cost: one latency per step, 2 (p - 1) steps (the diagram's rows)
    assert f(0.0, p, bandwidth, 1.0) == 2 * (p - 1)
    if p <= 8:
        assert len(ring_all_reduce_states(p)) - 1 == 2 * (p - 1)


@pytest.mark.parametrize("n_params, card, stage", [(7e9, 80 * 2**30, 3), (30e9, 80 * 2**30, 2),
                                                   (7.5e9, 32e9, 1), (70e9, 24 * 2**30, 3),
                                                   (1e9, 80 * 2**30, 0)])
def test_min_devices_solution_is_the_fewest_that_fit_by_the_library(n_params, card, stage):
    n = solution("ch2.zero_min_devices")(n_params, card, stage)
    assert memory.zero_memory(n_params, n, stage) <= card
    if n > 1:
        assert memory.zero_memory(n_params, n - 1, stage) > card


def test_min_devices_says_none_where_no_count_fits():
    f = solution("ch2.zero_min_devices")
    assert f(30e9, 80 * 2**30, 1) is None and f(7e9, 80 * 2**30, 0) is None
    assert memory.zero_memory(30e9, 10**6, 1) > 80 * 2**30     # even a million devices


def test_fsdp_solution_is_the_communication_of_the_library():
    assert solution("ch2.fsdp_trade") == "a"
    ratio = (memory.communication_volume(7e9, 8, "fsdp")
             / memory.communication_volume(7e9, 8, "ddp"))
    assert ratio == 1.5
