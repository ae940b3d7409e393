"""course_lib.quant: round trips within half a step, exact packing, NF4 against bitsandbytes."""

import copy
import math
import warnings

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

# the NF4 table bitsandbytes ships (bitsandbytes/functional.py, get_4bit_type("nf4"))
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
    # the absmax of *every* group lands exactly on +-qmax (per tensor: one group)
    n_groups = scale.numel()
    hit = (q.abs() == qmax)
    hits_per_group = quant.integer._grouped(hit.float(), gran["dim"], gran["group_size"])
    assert hits_per_group.reshape(n_groups, -1).amax(dim=1).all()


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


def test_per_channel_scales_are_each_rows_absmax():
    """dim=1 gives one scale per output row, each from its own row: a per-tensor scale with
    the per-channel shape (or a max over the wrong axis) fails here."""
    g = torch.Generator().manual_seed(7)
    w = torch.randn(8, 64, generator=g) * torch.logspace(-3, 0, 8)[:, None]  # rows 1000x apart
    for bits in (4, 8):
        qmax = 2 ** (bits - 1) - 1
        q, s = absmax_quantize(w, bits, dim=1)
        assert s.shape == (8, 1)
        assert torch.equal(s, w.abs().amax(dim=1, keepdim=True) / qmax)
        assert torch.equal(q.abs().amax(dim=1), torch.full((8,), qmax, dtype=torch.int8))
        rel = (dequantize(q, s) - w).norm(dim=1) / w.norm(dim=1)
        assert rel.max() < {4: 0.25, 8: 0.02}[bits]  # the smallest row keeps its precision
        q, s = absmax_quantize(w, bits, dim=0)  # per input column
        assert s.shape == (1, 64)
        assert torch.equal(s, w.abs().amax(dim=0, keepdim=True) / qmax)


@pytest.mark.parametrize("group_size", [4, 8, 16])
def test_groups_are_consecutive_and_exactly_group_size_long(group_size):
    """Each scale comes from exactly its own group_size consecutive elements: a spike at the
    first and at the last element of every group sets that group's scale and no other's, so
    an off-by-one boundary, a strided grouping or a mis-expanded scale fails."""
    n_rows, n = 3, 48
    x = torch.full((n_rows, n), 0.01)
    n_groups = n // group_size
    spikes = torch.arange(1, n_rows * n_groups + 1, dtype=torch.float32).reshape(n_rows, -1)
    for g in range(n_groups):
        x[:, g * group_size] = spikes[:, g]  # first element of the group
        x[:, g * group_size + group_size - 1] = -spikes[:, g] / 2  # last element
    for bits in (4, 8):
        qmax = 2 ** (bits - 1) - 1
        q, s = absmax_quantize(x, bits, dim=1, group_size=group_size)
        assert s.shape == (n_rows, n_groups)
        assert torch.equal(s, spikes / qmax)
        x_hat = dequantize(q, s)
        starts = torch.arange(0, n, group_size)
        torch.testing.assert_close(x_hat[:, starts], spikes, rtol=1e-6, atol=0)
        q2, s2, z2 = zeropoint_quantize(x, bits, dim=1, group_size=group_size)
        assert s2.shape == (n_rows, n_groups)
        torch.testing.assert_close(s2, (spikes * 1.5) / (2**bits - 1), rtol=1e-6, atol=0)
        torch.testing.assert_close(dequantize(q2, s2, z2)[:, starts], spikes,
                                   rtol=0, atol=float(s2.max()) / 2)
    # and along dim 0 (groups down the columns)
    q, s = absmax_quantize(x.T.contiguous(), 8, dim=0, group_size=group_size)
    assert torch.equal(s, spikes.T / 127)


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


def test_pack_int4_rejects_codes_that_are_neither_signed_nor_unsigned():
    with pytest.raises(ValueError, match="q must hold signed"):
        pack_int4(torch.tensor([-8, 15]))  # was silently packed as [-8, -1]
    with pytest.raises(ValueError, match="q must hold unsigned"):
        pack_int4(torch.tensor([0, 16], dtype=torch.uint8))
    with pytest.raises(ValueError, match="q must hold unsigned"):
        pack_int4(torch.tensor([-1, 3]), signed=False)
    codes = torch.tensor([0, 15, 9, 8])  # int64 NF4 indices: say they are unsigned
    packed = pack_int4(codes, signed=False)
    assert torch.equal(unpack_int4(packed, signed=False).long(), codes)


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


def test_nf4_groups_are_consecutive_elements_of_the_flat_tensor():
    """NF4 groups run over x.flatten(): with rows of 96 and groups of 64 a group spans two
    rows. A spike at each group's first and last element sets that group's absmax only and
    comes back exactly (it maps to level +-1). Grouping down columns, per row, or off by one
    fails here."""
    x = torch.full((4, 96), 0.001)
    flat = x.view(-1)
    n_groups = flat.numel() // 64
    for g in range(n_groups):
        flat[64 * g] = g + 1.0
        flat[64 * g + 63] = -(g + 1.0) / 4
    codes, absmax = nf4_quantize(x, 64)
    assert codes.shape == x.shape and absmax.shape == (n_groups,)
    assert torch.equal(absmax, torch.arange(1, n_groups + 1, dtype=torch.float32))
    back = nf4_dequantize(codes, absmax, 64).view(-1)
    assert torch.equal(back[::64], absmax)  # code 15 -> level 1.0, times the group's absmax
    assert torch.equal(codes.view(-1)[::64], torch.full((n_groups,), 15, dtype=torch.uint8))
    # the tiny values in group g are normalized by g + 1: they land on code 7 (exact zero)
    assert (codes.view(-1)[1:63] == 7).all()
    # the deprecated keyword gives the same answer, and says so
    with pytest.warns(DeprecationWarning, match="group_size"):
        codes2, absmax2 = nf4_quantize(x, block_size=64)
    assert torch.equal(codes2, codes) and torch.equal(absmax2, absmax)
    with pytest.warns(DeprecationWarning):
        assert torch.equal(nf4_dequantize(codes, absmax, block_size=64), back.view(4, 96))


def test_nf4_quantize_picks_nearest_level():
    w = weights(16, 64, seed=4)
    codes, absmax = nf4_quantize(w, group_size=64)
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


def check_vector_wise_int8(int8_matmul):
    """Vector-wise int8: each row of x and each row of w gets its own absmax scale.

    1. Scaling one token (row of x) or one output channel (row of w) by a power of two scales
       exactly that row/column of the result and changes nothing else, bit for bit. One scale
       per tensor fails: the big row changes the shared scale and every other row's codes.
    2. Rows 10^4 apart in magnitude each keep int8 precision; one shared scale would round the
       small rows to zero.
    3. Each entry lies within the bound that per-row rounding guarantees.
    """
    g = torch.Generator().manual_seed(8)
    x = torch.randn(16, 96, generator=g)
    w = torch.randn(24, 96, generator=g) * 0.05
    base = int8_matmul(x, w)
    x2 = x.clone()
    x2[3] *= 2.0**12
    out = int8_matmul(x2, w)
    assert torch.equal(out[3], base[3] * 2.0**12)
    assert torch.equal(torch.cat([out[:3], out[4:]]), torch.cat([base[:3], base[4:]]))
    w2 = w.clone()
    w2[5] *= 2.0**-10
    out = int8_matmul(x, w2)
    assert torch.equal(out[:, 5], base[:, 5] * 2.0**-10)
    assert torch.equal(torch.cat([out[:, :5], out[:, 6:]], 1),
                       torch.cat([base[:, :5], base[:, 6:]], 1))

    xs = x * torch.logspace(-4, 0, 16)[:, None]  # token norms 10^4 apart
    exact = xs.double() @ w.double().T
    got = int8_matmul(xs, w).double()
    rel = (got - exact).norm(dim=1) / exact.norm(dim=1)
    assert rel.max() < 0.02, rel.max()
    sx = xs.abs().amax(dim=1, keepdim=True).double() / 127  # (T, 1)
    sw = w.abs().amax(dim=1, keepdim=True).double() / 127  # (out, 1)
    bound = (sx / 2) @ w.double().abs().sum(1, keepdim=True).T \
        + xs.double().abs().sum(1, keepdim=True) @ (sw / 2).T + (sx / 2) @ (sw / 2).T * 96
    assert ((got - exact).abs() <= bound * (1 + 1e-6)).all()


def test_int8_matmul_has_one_scale_per_token_and_per_output_channel():
    check_vector_wise_int8(quant.int8_matmul)


@pytest.mark.parametrize("operand", ["x", "w"])
def test_the_check_catches_a_per_tensor_int8_matmul(monkeypatch, operand):
    """Break the kernel on purpose (one scale per tensor for x or for w): the check fails.
    Before this check, that broken kernel passed every unit test."""
    real = quant.outliers.absmax_quantize
    calls = []

    def per_tensor_for_one_operand(t, bits=8, dim=None, group_size=None):
        calls.append(t)
        if (operand == "x") == (len(calls) % 2 == 1):  # x is quantized first, then w
            q, s = real(t, bits)  # one scale for the whole tensor ...
            return q, s.expand(t.shape[0], 1)  # ... in the per-row shape
        return real(t, bits, dim, group_size)

    monkeypatch.setattr(quant.outliers, "absmax_quantize", per_tensor_for_one_operand)
    with pytest.raises(AssertionError):
        check_vector_wise_int8(quant.int8_matmul)


@pytest.mark.parametrize("fmt", quant.WEIGHT_FORMATS)
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


def test_quantize_model_on_a_bare_linear():
    """A bare nn.Linear cannot be swapped in place: quantize_model returns its QuantLinear
    (it used to return the float layer unchanged)."""
    torch.manual_seed(0)
    lin = nn.Linear(64, 8).requires_grad_(False)
    x = torch.randn(5, 64)
    for fmt in ("int8", "int4", "nf4"):
        q = quant.quantize_model(copy.deepcopy(lin), fmt)
        assert isinstance(q, QuantLinear) and q.fmt == fmt
        assert quant.model_nbytes(q) < quant.model_nbytes(lin)
        rel = float((q(x) - lin(x)).norm() / lin(x).norm())
        assert rel < {"int8": 0.01}.get(fmt, 0.2), (fmt, rel)
    with pytest.raises(ValueError, match="no nn.Linear"):
        quant.quantize_model(nn.Sequential(nn.ReLU()), "int8")
    with pytest.raises(ValueError, match="no nn.Linear"):
        quant.quantize_model(nn.Sequential(nn.Linear(4, 4)), "int8", skip=("0",))


def test_nf4_double_quant_linear_is_smaller_and_close():
    torch.manual_seed(0)
    lin = nn.Linear(256, 256, bias=False)
    plain = QuantLinear.from_linear(lin, "nf4")
    dq = QuantLinear.from_linear(lin, "nf4", double_quant=True)
    assert dq.nbytes() < plain.nbytes()
    assert torch.allclose(dq.dequantized_weight(), plain.dequantized_weight(), atol=2e-3)


NAN = float("nan")
BAD_CALLS = [  # (call, exception, a word the message must contain: the argument's name)
    (lambda: absmax_quantize(torch.randn(4, 8), bits=0), ValueError, "bits"),
    (lambda: absmax_quantize(torch.randn(4, 8), bits=1), ValueError, "bits"),
    (lambda: absmax_quantize(torch.randn(4, 8), bits=1.5), TypeError, "bits"),
    (lambda: absmax_quantize(torch.randn(4, 8), bits=99), ValueError, "bits"),
    (lambda: absmax_quantize(torch.randn(4, 8), bits=4.0), TypeError, "bits"),
    (lambda: absmax_quantize(torch.randn(4, 8), bits=True), TypeError, "bits"),
    (lambda: zeropoint_quantize(torch.randn(4, 8), bits=16), ValueError, "bits"),
    (lambda: absmax_quantize(torch.randn(4, 8), 4, dim=1, group_size=0), ValueError,
     "group_size"),
    (lambda: absmax_quantize(torch.randn(4, 8), 4, dim=1, group_size=-4), ValueError,
     "group_size"),
    (lambda: absmax_quantize(torch.randn(4, 8), 4, dim=1, group_size=2.0), TypeError,
     "group_size"),
    (lambda: absmax_quantize(torch.randn(4, 10), 4, dim=1, group_size=4), ValueError,
     "group_size"),
    (lambda: zeropoint_quantize(torch.randn(4, 10), 4, group_size=3), ValueError, "group_size"),
    (lambda: absmax_quantize(torch.randn(4, 8), 4, dim=2), ValueError, "dim"),
    (lambda: absmax_quantize(torch.randn(4, 8), 4, dim=1.0), TypeError, "dim"),
    (lambda: absmax_quantize(torch.tensor([1.0, NAN])), ValueError, "NaN"),
    (lambda: zeropoint_quantize(torch.tensor([1.0, float("inf")])), ValueError, "x"),
    (lambda: absmax_quantize(torch.tensor([])), ValueError, "x is empty"),
    (lambda: zeropoint_quantize(torch.tensor([3e38, -3e38])), ValueError, "x spans"),
    (lambda: absmax_quantize(torch.zeros(0, 8), dim=1), ValueError, "x is empty"),
    (lambda: absmax_quantize([1.0, 2.0]), TypeError, "x"),
    (lambda: absmax_quantize(torch.arange(4)), TypeError, "x"),
    (lambda: dequantize(torch.ones(4), torch.tensor(1.0)), TypeError, "q"),
    (lambda: dequantize(torch.ones(4, dtype=torch.int8), torch.tensor(NAN)), ValueError,
     "scale"),
    (lambda: dequantize(torch.ones(4, 6, dtype=torch.int8), torch.ones(4, 4)), ValueError,
     "scale"),
    (lambda: quant.quant_error(torch.randn(8), scheme="log"), ValueError, "scheme"),
    (lambda: nf4_quantize(torch.tensor([1.0, float("-inf")] * 32)), ValueError, "x"),
    (lambda: nf4_quantize(torch.tensor([NAN] * 64)), ValueError, "NaN"),
    (lambda: nf4_quantize(torch.randn(100), 64), ValueError, "group_size"),
    (lambda: nf4_quantize(torch.randn(64), 0), ValueError, "group_size"),
    (lambda: nf4_quantize(torch.randn(64), group_size=64, block_size=64), TypeError,
     "group_size"),
    (lambda: nf4_quantize(torch.tensor([])), ValueError, "x is empty"),
    (lambda: nf4_dequantize(torch.full((64,), 200, dtype=torch.uint8), torch.ones(1)),
     ValueError, "codes"),
    (lambda: nf4_dequantize(torch.full((64,), -1), torch.ones(1)), ValueError, "codes"),
    (lambda: nf4_dequantize(torch.zeros(64), torch.ones(1)), TypeError, "codes"),
    (lambda: nf4_dequantize(torch.zeros(64, dtype=torch.uint8), torch.ones(2)), ValueError,
     "absmax"),
    (lambda: nf4_dequantize(torch.zeros(64, dtype=torch.uint8), -torch.ones(1)), ValueError,
     "absmax"),
    (lambda: nf4_dequantize(torch.zeros(64, dtype=torch.uint8), torch.tensor([NAN])),
     ValueError, "absmax"),
    (lambda: quant.nf4_levels(1.5), ValueError, "offset"),
    (lambda: quant.nf4_levels("0.9"), TypeError, "offset"),
    (lambda: quant.double_quantize(torch.tensor([1.0, NAN])), ValueError, "absmax"),
    (lambda: quant.double_quantize(torch.ones(8), 0), ValueError, "group_size"),
    (lambda: quant.double_dequantize(*quant.double_quantize(torch.ones(8)), n=300), ValueError,
     "n"),
    (lambda: quant.double_dequantize(*quant.double_quantize(torch.ones(8)), n=0), ValueError,
     "n"),
    (lambda: quant.scale_overhead_bits(0), ValueError, "group_size"),
    (lambda: quant.scale_overhead_bits(64, double=1), TypeError, "double"),
    (lambda: pack_int4(torch.tensor([1, 2, 3], dtype=torch.int8)), ValueError, "q"),
    (lambda: pack_int4(torch.tensor([1, 20], dtype=torch.int8)), ValueError, "q"),
    (lambda: pack_int4(torch.tensor([-8, 15])), ValueError, "q"),
    (lambda: pack_int4([-8, 7]), TypeError, "q"),
    (lambda: pack_int4(torch.tensor([], dtype=torch.int8)), ValueError, "q"),
    (lambda: pack_int4(torch.tensor([0.5, 1.0])), TypeError, "q"),
    (lambda: unpack_int4(torch.tensor([1, 2])), TypeError, "packed"),
    (lambda: unpack_int4(torch.tensor([], dtype=torch.uint8)), ValueError, "packed"),
    (lambda: unpack_int4(torch.tensor([1], dtype=torch.uint8), signed="yes"), TypeError,
     "signed"),
    (lambda: QuantLinear.from_linear(nn.Linear(8, 8), "int3"), ValueError, "fmt"),
    (lambda: QuantLinear.from_linear(nn.Conv1d(8, 8, 1), "int8"), TypeError, "linear"),
    (lambda: QuantLinear.from_linear(nn.Linear(64, 8), "int8", double_quant=True), ValueError,
     "double_quant"),
    (lambda: QuantLinear.from_linear(nn.Linear(64, 8), "fp16", group_size=32), ValueError,
     "group_size"),
    (lambda: QuantLinear.from_linear(nn.Linear(64, 8), "int4", group_size=0), ValueError,
     "group_size"),
    (lambda: QuantLinear(0, 8, "int8"), ValueError, "in_features"),
    (lambda: quant.quantize_model(nn.Linear(100, 8), "int4"), ValueError, "group_size"),
    (lambda: quant.quantize_model("model", "int8"), TypeError, "model"),
    (lambda: quant.quantize_model(nn.Sequential(nn.Linear(4, 4)), "int8", skip="0"),
     TypeError, "skip"),
    (lambda: quant.model_nbytes(None), TypeError, "model"),
    (lambda: quant.int8_matmul(torch.randn(2, 8), torch.randn(4, 9)), ValueError, "w"),
    (lambda: quant.int8_matmul(torch.randn(2, 8), torch.randn(8)), ValueError, "w"),
    (lambda: quant.int8_matmul(torch.tensor([[1.0, NAN]]), torch.randn(4, 2)), ValueError, "x"),
    (lambda: quant.int8_matmul(torch.randn(2, 8), torch.zeros(0, 8)), ValueError, "w"),
    (lambda: quant.llm_int8_matmul(torch.randn(2, 8), torch.randn(4, 9)), ValueError, "w"),
    (lambda: quant.llm_int8_matmul(torch.randn(2, 8), torch.randn(4, 8), 0.0), ValueError,
     "threshold"),
    (lambda: quant.outlier_features(torch.randn(2, 8), NAN), ValueError, "threshold"),
    (lambda: quant.outlier_features(torch.randn(2, 8), "6"), TypeError, "threshold"),
]


@pytest.mark.parametrize("call,exc,name", BAD_CALLS)
def test_bad_input_raises_naming_the_argument(call, exc, name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        with pytest.raises(exc, match=name):
            call()


def test_nan_weights_never_become_finite_codes():
    """The quantizers' NaN policy: raise (a NaN has no nearest code)."""
    w = torch.randn(8, 64)
    w[3, 5] = math.nan
    for call in (lambda: absmax_quantize(w, 8, dim=1), lambda: zeropoint_quantize(w, 4),
                 lambda: nf4_quantize(w), lambda: quant.int8_matmul(torch.randn(2, 64), w)):
        with pytest.raises(ValueError, match="NaN"):
            call()
    lin = nn.Linear(64, 8)
    with torch.no_grad():
        lin.weight[0, 0] = math.nan
    for fmt in quant.WEIGHT_FORMATS:
        with pytest.raises(ValueError, match="linear.weight"):
            QuantLinear.from_linear(lin, fmt)


def test_quantization_grid_diagram():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from course_lib import plots

    x = torch.tensor([-0.5, 0.2, 0.9, 2.8])
    q, s = absmax_quantize(x, bits=3)
    fig, ax = plt.subplots()
    plots.quantization_grid(ax, x, np.arange(-3, 4) * float(s), q.numpy() + 3,
                            code_labels=range(-3, 4), source_range=(-2.8, 2.8))
    assert len(ax.texts) >= 7  # a label under every grid mark
    fig.canvas.draw()
    with pytest.raises(ValueError, match="codes"):
        plots.quantization_grid(ax, x, np.arange(7.0), np.array([0, 1, 2, 9]))
    with pytest.raises(ValueError, match="finite"):
        plots.quantization_grid(ax, [float("nan")], np.arange(7.0), np.array([0]))
    plt.close(fig)


def test_levels_on_density_diagram():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from course_lib import plots

    xs = np.linspace(-1.2, 1.2, 200)
    fig, ax = plt.subplots()
    plots.levels_on_density(ax, NF4_LEVELS, xs, np.exp(-xs**2), np.arange(-7, 8) / 7)
    assert len(ax.collections) >= 16  # one shaded slice per level (and the level lines)
    fig.canvas.draw()
    with pytest.raises(ValueError, match="levels"):
        plots.levels_on_density(ax, [0.0], xs, np.exp(-xs**2))
    with pytest.raises(ValueError, match="finite"):
        plots.levels_on_density(ax, [0.0, float("nan")], xs, np.exp(-xs**2))
    plt.close(fig)
