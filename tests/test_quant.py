"""course_lib.quant: round trips within half a step, exact packing, NF4 against bitsandbytes."""

import copy

import pytest
import torch
from torch import nn

from course_lib import quant
from course_lib.quant import (
    NF4_LEVELS,
    QuantLinear,
    absmax_quantize,
    dequantize,
    nf4_dequantize,
    nf4_quantize,
    pack_int4,
    unpack_int4,
    zeropoint_quantize,
)

# bitsandbytes/functional.py get_4bit_type("nf4"), as quoted in REFERENCES.md section 4
BNB_NF4 = [
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
    -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
    0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
    0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
]


# element-wise work on mid-sized tensors: one thread is as fast and never oversubscribes
pytestmark = pytest.mark.usefixtures("one_thread")


def weights(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(*shape, generator=g) * 0.05
    w.view(-1)[::97] *= 20  # a few large values so groups differ in range
    return w


GRANULARITIES = [
    dict(dim=None, group_size=None),  # per tensor
    dict(dim=1, group_size=None),  # per output channel of an (out, in) weight
    dict(dim=0, group_size=None),
    dict(dim=1, group_size=32),
    dict(dim=None, group_size=16),  # groups along the last dim
    dict(dim=0, group_size=8),
]


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
@pytest.mark.parametrize("gran", GRANULARITIES)
def test_absmax_round_trip_within_half_a_step(bits, gran):
    w = weights(24, 64)
    q, scale = absmax_quantize(w, bits, **gran)
    assert q.dtype == torch.int8 and q.shape == w.shape
    qmax = 2 ** (bits - 1) - 1
    assert q.abs().max() <= qmax
    step = torch.broadcast_to(quant.integer._expand(scale, q.shape), q.shape)
    err = (dequantize(q, scale) - w).abs()
    assert torch.all(err <= step / 2 * (1 + 1e-5) + 1e-7)
    # the absmax of each group lands exactly on +-qmax
    assert (q.abs() == qmax).any()


@pytest.mark.parametrize("bits", [2, 4, 8])
@pytest.mark.parametrize("gran", GRANULARITIES)
def test_zeropoint_round_trip_within_half_a_step(bits, gran):
    w = weights(24, 64, seed=1) + 0.03  # off-centre, so the zero point matters
    q, scale, zero = zeropoint_quantize(w, bits, **gran)
    assert q.dtype == torch.uint8 and q.max() <= 2**bits - 1
    step = torch.broadcast_to(quant.integer._expand(scale, q.shape), q.shape)
    err = (dequantize(q, scale, zero) - w).abs()
    assert torch.all(err <= step / 2 * (1 + 1e-5) + 1e-7)


def test_scale_shapes_and_values():
    w = weights(6, 32)
    _, s = absmax_quantize(w, 8)
    assert s.shape == () and torch.isclose(s, w.abs().max() / 127)
    _, s = absmax_quantize(w, 8, dim=1)
    assert s.shape == (6, 1)
    _, s = absmax_quantize(w, 4, dim=1, group_size=8)
    assert s.shape == (6, 4)
    assert torch.allclose(s, w.reshape(6, 4, 8).abs().amax(-1) / 7)
    _, s, z = zeropoint_quantize(torch.tensor([0.0, 1.0, 2.0, 3.0]), 2)
    assert float(s) == 1.0 and int(z) == 0


def test_zeros_and_exact_grid_values():
    q, s = absmax_quantize(torch.zeros(4, 8), 8, dim=1)
    assert torch.equal(dequantize(q, s), torch.zeros(4, 8))
    x = torch.arange(-127, 128, dtype=torch.float32) * 0.01  # already on the int8 grid
    q, s = absmax_quantize(x, 8)
    assert torch.equal(q.long(), torch.arange(-127, 128))
    q, s, z = zeropoint_quantize(torch.tensor([0.0, 5.0, -3.0]), 8)
    assert dequantize(q, s, z)[0] == 0.0  # zero is exact


def test_finer_granularity_lowers_error():
    w = weights(64, 256, seed=3)
    per_tensor = quant.quant_error(w, 4)
    per_channel = quant.quant_error(w, 4, dim=1)
    per_group = quant.quant_error(w, 4, dim=1, group_size=32)
    assert per_group < per_channel < per_tensor
    assert quant.quant_error(w, 8, dim=1) < quant.quant_error(w, 4, dim=1)


def test_int4_pack_unpack_exact():
    g = torch.Generator().manual_seed(0)
    q = torch.randint(-8, 8, (5, 3, 64), generator=g, dtype=torch.int8)
    packed = pack_int4(q)
    assert packed.dtype == torch.uint8 and packed.shape == (5, 3, 32)
    assert packed.numel() * packed.element_size() == q.numel() // 2
    assert torch.equal(unpack_int4(packed), q)
    every = torch.arange(-8, 8, dtype=torch.int8).repeat(2)
    assert torch.equal(unpack_int4(pack_int4(every)), every)
    u = torch.arange(16, dtype=torch.uint8)
    assert torch.equal(unpack_int4(pack_int4(u), signed=False).to(torch.uint8), u)
    assert pack_int4(torch.tensor([1, 2], dtype=torch.int8)).item() == 0x21  # low nibble first


def test_nf4_levels_match_bitsandbytes_table():
    assert len(NF4_LEVELS) == 16
    for ours, theirs in zip(NF4_LEVELS, BNB_NF4, strict=True):
        assert abs(ours - theirs) < 1e-6
    assert NF4_LEVELS[7] == 0.0 and NF4_LEVELS[0] == -1.0 and NF4_LEVELS[-1] == 1.0
    assert abs(quant.NF4_OFFSET - (1 - 1 / 30 + 1 - 1 / 32) / 2) < 1e-7


def test_nf4_quantize_picks_nearest_level():
    w = weights(16, 64, seed=4)
    codes, absmax = nf4_quantize(w, block_size=64)
    assert codes.shape == w.shape and codes.max() <= 15 and absmax.shape == (16,)
    deq = nf4_dequantize(codes, absmax, 64)
    levels = torch.tensor(NF4_LEVELS)
    normalized = (w.reshape(-1, 64) / absmax[:, None]).reshape(-1, 1)
    best = (normalized - levels).abs().min(dim=1).values.reshape(w.shape)
    got = ((deq - w).abs() / absmax.repeat_interleave(64).reshape(w.shape))
    assert torch.allclose(got, best, atol=1e-6)
    # on normal weights NF4 beats uniform int4 with the same block size
    g = torch.randn(256, 256, generator=torch.Generator().manual_seed(5))
    nf4_err = (nf4_dequantize(*nf4_quantize(g), 64) - g).norm()
    int4_err = (dequantize(*absmax_quantize(g, 4, group_size=64)) - g).norm()
    assert nf4_err < int4_err


def test_double_quantization():
    assert quant.scale_overhead_bits(64) == 0.5
    assert round(quant.scale_overhead_bits(64, double=True), 3) == 0.127
    absmax = weights(1000).abs() + 0.01
    q, s2, mean = quant.double_quantize(absmax, 256)
    assert q.dtype == torch.int8 and q.numel() == 1024 and s2.numel() == 4
    back = quant.double_dequantize(q, s2, mean, n=1000)
    assert (back - absmax).abs().max() <= s2.max() / 2 + 1e-6


def test_llm_int8_decomposition():
    g = torch.Generator().manual_seed(6)
    x = torch.randn(32, 128, generator=g)
    x[:, 7] *= 40  # one outlier feature, as in large transformers
    w = torch.randn(64, 128, generator=g) * 0.05
    exact = x @ w.T
    idx = quant.outlier_features(x, 6.0)
    assert idx.tolist() == [7]
    plain = quant.int8_matmul(x, w)
    mixed, idx2 = quant.llm_int8_matmul(x, w, 6.0)
    assert torch.equal(idx, idx2)
    assert (mixed - exact).norm() < 0.2 * (plain - exact).norm()
    no_outliers = torch.randn(8, 128, generator=g)
    out, idx3 = quant.llm_int8_matmul(no_outliers, w)
    assert idx3.numel() == 0 and torch.allclose(out, quant.int8_matmul(no_outliers, w))
    out, _ = quant.llm_int8_matmul(no_outliers * 100, w)  # every feature an outlier
    assert torch.allclose(out, no_outliers * 100 @ w.T, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("fmt", quant.linear.FORMATS)
def test_quant_linear_and_model_swap(fmt):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 128, bias=False))
    x = torch.randn(4, 128)
    with torch.no_grad():
        ref = model(x)
    qmodel = quant.quantize_model(copy.deepcopy(model), fmt)
    assert all(isinstance(qmodel[i], QuantLinear) for i in (0, 2))
    rel = float((qmodel(x) - ref).norm() / ref.norm())
    assert rel < {"fp16": 1e-3, "bf16": 1e-2, "int8": 1e-2}.get(fmt, 0.2), rel
    n_w = 128 * 64 * 2
    expected_codes = {"fp16": 2 * n_w, "bf16": 2 * n_w, "fp8_e4m3": n_w, "int8": n_w,
                      "int4": n_w // 2, "nf4": n_w // 2}[fmt]
    scale_bytes = {"fp16": 0, "bf16": 0, "fp8_e4m3": 4 * 192, "int8": 4 * 192,
                   "int4": 4 * n_w // 64, "nf4": 4 * n_w // 64}[fmt]
    assert quant.model_nbytes(qmodel) == expected_codes + scale_bytes + 4 * 64
    assert quant.model_nbytes(model) == 4 * n_w + 4 * 64


def test_nf4_double_quant_linear_is_smaller_and_close():
    torch.manual_seed(0)
    lin = nn.Linear(256, 256, bias=False)
    plain = QuantLinear.from_linear(lin, "nf4")
    dq = QuantLinear.from_linear(lin, "nf4", double_quant=True)
    assert dq.nbytes() < plain.nbytes()
    assert torch.allclose(dq.dequantized_weight(), plain.dequantized_weight(), atol=2e-3)


@pytest.mark.parametrize(
    "call",
    [
        lambda: absmax_quantize(torch.randn(4, 8), bits=1),
        lambda: absmax_quantize(torch.randn(4, 8), bits=9),
        lambda: zeropoint_quantize(torch.randn(4, 8), bits=16),
        lambda: absmax_quantize(torch.randn(4, 8), bits=4.0),
        lambda: absmax_quantize(torch.randn(4, 10), 4, dim=1, group_size=4),
        lambda: zeropoint_quantize(torch.randn(4, 10), 4, group_size=3),
        lambda: absmax_quantize(torch.tensor([1.0, float("nan")])),
        lambda: zeropoint_quantize(torch.tensor([1.0, float("inf")])),
        lambda: nf4_quantize(torch.tensor([1.0, float("-inf")] * 32)),
        lambda: nf4_quantize(torch.randn(100), block_size=64),
        lambda: absmax_quantize(torch.arange(4)),
        lambda: pack_int4(torch.tensor([1, 2, 3], dtype=torch.int8)),
        lambda: pack_int4(torch.tensor([1, 20], dtype=torch.int8)),
        lambda: QuantLinear.from_linear(nn.Linear(8, 8), "int3"),
        lambda: quant.quantize_model(nn.Linear(100, 8), "int4"),  # 64 does not divide 100
        lambda: quant.llm_int8_matmul(torch.randn(2, 8), torch.randn(4, 9)),
        lambda: quant.quant_error(torch.randn(8), scheme="log"),
    ],
)
def test_bad_input_raises_value_error(call):
    with pytest.raises(ValueError):
        call()
