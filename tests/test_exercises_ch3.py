"""Exercises of page 3: every one has plausible wrong answers that fail with a useful
message, and the solutions agree with the course's own code."""

import math

import pytest
import torch

from course_lib import numerics, quant
from course_lib.exercises import check, get, list_exercises, solution

PAGE = 3


def _limits_bias_2k(exp_bits, man_bits):  # the source notes' wrong bias, 2**k - 1
    bias = 2**exp_bits - 1
    return ((2 - 2.0**-man_bits) * 2.0 ** (2**exp_bits - 2 - bias), 2.0 ** (1 - bias),
            2.0**-man_bits)


def _limits_top_field_used(exp_bits, man_bits):  # forgets that all-ones is inf/NaN
    bias = 2 ** (exp_bits - 1) - 1
    return ((2 - 2.0**-man_bits) * 2.0 ** (2**exp_bits - 1 - bias), 2.0 ** (1 - bias),
            2.0**-man_bits)


def _group_absmax_per_row(w, group_size, bits=4):  # one scale per row, repeated
    qmax = 2 ** (bits - 1) - 1
    s = w.abs().amax(1, keepdim=True) / qmax
    q = torch.round(w / torch.where(s > 0, s, 1)).clamp(-qmax, qmax).to(torch.int8)
    return q, s.expand(w.shape[0], w.shape[1] // group_size).clone()


def _group_absmax_strided(w, group_size, bits=4):  # groups every n-th weight, not consecutive
    qmax = 2 ** (bits - 1) - 1
    rows, cols = w.shape
    g = w.reshape(rows, group_size, cols // group_size).transpose(1, 2)
    s = g.abs().amax(2) / qmax
    q = torch.round(g / torch.where(s > 0, s, 1)[..., None]).clamp(-qmax, qmax)
    return q.transpose(1, 2).reshape(rows, cols).to(torch.int8), s


def _nf4_bytes_bits(block_size=64, double_quant=False, block_size2=256):  # bits, not bytes
    return 4 + quant.scale_overhead_bits(block_size, double_quant, block_size2)


def _nf4_bytes_fp32_second(block_size=64, double_quant=False, block_size2=256):
    extra = 4 / block_size if not double_quant else 1 / block_size + 4 / block_size2
    return 0.5 + extra  # the second-level scale counted per block, not per block of blocks


def _outliers_per_value(x, threshold=6.0):  # flat indices of values, not features
    return (x.abs() >= threshold).flatten().nonzero().flatten()


def _outliers_strict(x, threshold=6.0):  # > instead of >=
    return (x.abs() > threshold).reshape(-1, x.shape[-1]).any(0).nonzero().flatten()


def _outliers_first_sequence(x, threshold=6.0):  # looks at the first sequence only
    return (x[0].abs() >= threshold).any(0).nonzero().flatten()


WRONG = {
    "ch3.format_limits": [_limits_bias_2k, _limits_top_field_used],
    "ch3.group_absmax": [_group_absmax_per_row, _group_absmax_strided],
    "ch3.nf4_bytes": [_nf4_bytes_bits, _nf4_bytes_fp32_second],
    "ch3.outliers": [_outliers_per_value, _outliers_strict, _outliers_first_sequence],
    "ch3.range_choice": ["a", "c", "d"],
}


def test_most_exercises_of_the_page_are_transfer_problems():
    exs = [get(i) for i in list_exercises(PAGE)]
    assert 4 <= len(exs) <= 6 and 2 * sum(ex.transfer for ex in exs) >= len(exs)
    assert all(ex.why for ex in exs)


@pytest.mark.parametrize("exercise_id", list(WRONG))
def test_solutions_pass_their_own_check_and_reject_bad_input(exercise_id, capsys):
    assert check(exercise_id, solution(exercise_id)) is True
    out = capsys.readouterr().out
    if get(exercise_id).kind == "function":
        assert "rejects bad input" in out


def test_format_limits_agrees_with_numerics_and_torch():
    for name in ("fp32", "fp16", "bf16", "fp8_e5m2"):
        f = numerics.FORMATS[name]
        assert solution("ch3.format_limits")(f.exp_bits, f.man_bits) == (
            f.max, f.smallest_normal, f.eps)
    for e, m in ((3, 2), (2, 3), (4, 3), (2, 1)):  # formats torch does not have
        f = numerics.FloatFormat("x", e, m)
        assert solution("ch3.format_limits")(e, m) == (f.max, f.smallest_normal, f.eps)
    assert solution("ch3.format_limits")(3, 2) == (14.0, 0.25, 0.25)  # stated in `why`
    assert solution("ch3.format_limits")(2, 3) == (3.75, 1.0, 0.125)


def test_group_absmax_agrees_with_quant():
    w = torch.randn(6, 128)
    for g, bits in ((64, 4), (32, 8), (128, 4)):
        q, s = solution("ch3.group_absmax")(w, g, bits)
        q_ref, s_ref = quant.absmax_quantize(w, bits, dim=1, group_size=g)
        assert torch.equal(q, q_ref) and torch.equal(s, s_ref)  # same ops, same order


def test_nf4_bytes_agrees_with_quant_and_the_stored_tensors():
    f = solution("ch3.nf4_bytes")
    for b, dq, b2 in ((64, False, 256), (64, True, 256), (128, True, 64)):
        assert f(b, dq, b2) == 0.5 + quant.scale_overhead_bits(b, dq, b2) / 8
    assert f(64) == 0.5625 and round(f(64, True), 4) == 0.5159 and round(f(256), 4) == 0.5156
    assert f(253) < f(64, True) < f(252)  # stated in `why`: blocks of more than 252 weights
    w = torch.randn(64 * 256 * 4)
    codes, absmax = quant.nf4_quantize(w, 64)
    q2, scale2, _ = quant.double_quantize(absmax, group_size=256)
    stored = w.numel() / 2 + q2.numel() * q2.element_size() + scale2.numel() * 4
    assert stored / w.numel() == f(64, True)  # exact: whole blocks, no mean counted


def test_outliers_agree_with_quant():
    x = torch.randn(3, 10, 32) * 2.5
    assert torch.equal(solution("ch3.outliers")(x), quant.outlier_features(x, 6.0))
    assert torch.equal(solution("ch3.outliers")(x, 3.0), quant.outlier_features(x, 3.0))


def test_range_choice_holds_for_the_formats():
    big, small = 70_000.0, 1e-9
    assert math.isinf(numerics.round_to(big, "fp16"))
    assert math.isinf(numerics.round_to(big, "fp8_e5m2"))
    assert numerics.round_to(small, "fp16") == 0.0
    assert numerics.round_to(big, "bf16") == 70_144.0  # stated in `why`
    assert numerics.round_to(small, "bf16") > 0 and numerics.FORMATS["fp8_e4m3"].max == 448
    assert solution("ch3.range_choice") == "b"
