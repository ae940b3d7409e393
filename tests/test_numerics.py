"""course_lib.numerics held to torch's own dtype casts, bit pattern for bit pattern."""

import math

import numpy as np
import pytest
import torch

from course_lib import numerics
from course_lib.numerics import FORMATS, decode, encode, float_bits, int_bits, round_to

SMALL = ["fp16", "bf16", "fp8_e4m3", "fp8_e5m2"]
BITS_VIEW = {16: torch.int16, 8: torch.uint8, 32: torch.int32}


# element-wise work on mid-sized tensors: one thread is as fast and never oversubscribes
pytestmark = pytest.mark.usefixtures("one_thread")


def torch_saturates_e4m3() -> bool:
    """Recent torch saturates E4M3 casts on CPU (pytorch#178817); older versions return NaN."""
    return not torch.tensor([1000.0]).to(torch.float8_e4m3fn).float().isnan().item()


def default_saturate(fmt):
    return torch_saturates_e4m3() if fmt == "fp8_e4m3" else None


def all_patterns(fmt):
    """Every bit pattern of a <=16-bit format, as (unsigned int64 patterns, torch values)."""
    f = FORMATS[fmt]
    if f.total_bits == 16:
        raw = torch.arange(-(2**15), 2**15, dtype=torch.int16)
    else:
        raw = torch.arange(256, dtype=torch.int32).to(torch.uint8)
    values = raw.view(f.torch_dtype)
    return raw.to(torch.int64) & ((1 << f.total_bits) - 1), values


def assert_same_values(a, b):
    """Equal as float64, NaN where NaN, and the same sign of zero."""
    a, b = a.to(torch.float64), b.to(torch.float64)
    torch.testing.assert_close(a, b, rtol=0, atol=0, equal_nan=True)
    both = ~(a.isnan() | b.isnan())
    assert torch.equal(torch.signbit(a[both]), torch.signbit(b[both]))


@pytest.mark.parametrize("fmt", SMALL)
def test_decode_every_bit_pattern(fmt):
    patterns, values = all_patterns(fmt)
    assert_same_values(decode(patterns, fmt), values.to(torch.float64))


@pytest.mark.parametrize("fmt", SMALL)
def test_encode_every_value_back_to_its_pattern(fmt):
    patterns, values = all_patterns(fmt)
    v = values.to(torch.float64)
    bits = encode(v, fmt)
    nan = v.isnan()
    assert torch.equal(bits[~nan], patterns[~nan])  # includes +-0, +-inf, subnormals, max
    assert decode(bits[nan], fmt).isnan().all()
    # and the count of specials matches the format description
    f = FORMATS[fmt]
    assert int(nan.sum()) == f.n_nan_patterns
    assert int(v.isinf().sum()) == (2 if f.has_inf else 0)
    finite = v[v.isfinite()]
    assert finite.max().item() == f.max
    assert finite[finite > 0].min().item() == f.smallest_subnormal


@pytest.mark.parametrize("fmt", SMALL)
def test_round_to_and_float_bits_on_every_value(fmt):
    _, values = all_patterns(fmt)
    v = values.to(torch.float64)
    assert_same_values(round_to(v, fmt), v)
    for x in v[::97].tolist() + [0.0, -0.0, FORMATS[fmt].max]:
        fb = float_bits(x, fmt)
        if not math.isnan(x):
            assert fb.value == x and math.copysign(1, fb.value) == math.copysign(1, x)


def fp32_probe_values(fmt, n_random=200_000):
    """fp32 inputs that stress rounding into fmt: random patterns, ties, neighbours of ties."""
    g = torch.Generator().manual_seed(0)
    random_bits = torch.randint(-(2**31), 2**31 - 1, (n_random,), generator=g, dtype=torch.int64)
    random_vals = random_bits.to(torch.int32).view(torch.float32)
    f = FORMATS[fmt]
    scaled = torch.randn(n_random // 4, generator=g) * torch.exp2(
        torch.randint(f.emin - f.man_bits - 3, f.emax + 3, (n_random // 4,), generator=g).float()
    )
    _, values = all_patterns(fmt)
    grid = values.to(torch.float32)
    grid = grid[grid.isfinite()].unique()  # sorted, includes -max..max
    mids = (grid[:-1].double() + grid[1:].double()) / 2  # ties, exact in fp32 for these formats
    assert torch.equal(mids.float().double(), mids)
    mids = mids.float()
    above = torch.nextafter(mids, torch.full_like(mids, math.inf))
    below = torch.nextafter(mids, torch.full_like(mids, -math.inf))
    edges = torch.tensor(
        [
            0.0, -0.0, math.inf, -math.inf, math.nan, f.max, -f.max,
            f.max * (1 + 2.0 ** -(f.man_bits + 1)),  # halfway from max to the next binade step
            f.max * 1.0001, 1e30, -1e30, 3.0e38,
            f.smallest_subnormal / 2, f.smallest_subnormal * 0.75, f.smallest_normal,
            f.smallest_normal * (1 - 2.0 ** -(f.man_bits + 1)), 1e-30, 1.4e-45, math.pi,
        ],
        dtype=torch.float32,
    )
    return torch.cat([random_vals, scaled, grid, mids, above, below, edges])


@pytest.mark.parametrize("fmt", SMALL)
def test_round_to_matches_torch_cast_from_fp32(fmt):
    x = fp32_probe_values(fmt)
    f = FORMATS[fmt]
    expected = x.to(f.torch_dtype).to(torch.float64)
    got = round_to(x, fmt, saturate=default_saturate(fmt))
    assert_same_values(got, expected)
    bits = encode(x, fmt, saturate=default_saturate(fmt))
    nan = expected.isnan()
    torch_bits = x.to(f.torch_dtype).view(BITS_VIEW[f.total_bits]).to(torch.int64)
    torch_bits &= (1 << f.total_bits) - 1
    assert torch.equal(bits[~nan], torch_bits[~nan])


def test_e4m3_overflow_modes():
    f = FORMATS["fp8_e4m3"]
    assert f.max == 448.0 and not f.has_inf
    assert round_to(464.0, "fp8_e4m3", saturate=False) == 448.0  # the tie rounds down to even
    assert math.isnan(round_to(465.0, "fp8_e4m3", saturate=False))
    assert math.isnan(round_to(math.inf, "fp8_e4m3", saturate=False))
    assert round_to(1e6, "fp8_e4m3", saturate=True) == 448.0
    assert round_to(-math.inf, "fp8_e4m3", saturate=True) == -448.0
    assert FORMATS["fp8_e5m2"].max == 57344.0
    assert round_to(61440.0, "fp8_e5m2") == math.inf  # tie between 57344 and the inf step
    assert round_to(61439.0, "fp8_e5m2") == 57344.0


def test_fp32_random_patterns_and_edges():
    g = torch.Generator().manual_seed(1)
    raw = torch.randint(-(2**31), 2**31 - 1, (500_000,), generator=g, dtype=torch.int64)
    raw = torch.cat([raw, torch.tensor([0, 1, 2**23 - 1, 2**23, 0x7F7FFFFF, 0x7F800000,
                                        -(2**31), 0x7FC00000, 0x40490FDB])])
    vals = raw.to(torch.int32).view(torch.float32)
    patterns = raw & 0xFFFFFFFF
    assert_same_values(decode(patterns, "fp32"), vals.double())
    bits = encode(vals.double(), "fp32")
    ok = ~vals.isnan()
    assert torch.equal(bits[ok], patterns[ok])


def test_fp32_rounding_from_float64_matches_torch():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(200_000, generator=g, dtype=torch.float64) * torch.exp2(
        torch.randint(-160, 130, (200_000,), generator=g).double()
    )
    grid = torch.randn(50_000, generator=g).abs()
    up = torch.nextafter(grid, torch.full_like(grid, math.inf))
    ties = (grid.double() + up.double()) / 2  # exact halfway between two fp32 neighbours
    edges = torch.tensor([3.4028235677973366e38, 3.4028235677973362e38, 2.0**128, 2.0**-149,
                          2.0**-150, 1.5 * 2.0**-149, 2.0**-126, 1e-320, math.pi, -0.0],
                         dtype=torch.float64)
    x = torch.cat([x, ties, -ties, edges])
    assert_same_values(round_to(x, "fp32"), x.to(torch.float32).double())


def test_pi_in_every_format():
    pi = math.pi
    fp32 = float_bits(pi, "fp32")
    assert f"{fp32.value:.20f}" == "3.14159274101257324219"
    assert str(fp32) == "0 10000000 10010010000111111011011"
    assert fp32.exponent == 128 and fp32.true_exponent == 1 and fp32.bits == 0x40490FDB
    assert float_bits(pi, "fp16").value == 3.140625 == float_bits(pi, "bf16").value
    assert str(float_bits(pi, "fp16")) == "0 10000 1001001000"
    assert int_bits(pi).value == 3 and str(int_bits(pi)) == "00000011"


def test_format_constants():
    assert [FORMATS[f].bias for f in ("fp32", "fp16", "bf16", "fp8_e4m3", "fp8_e5m2")] == [
        127, 15, 127, 7, 15]
    assert FORMATS["fp16"].max == 65504.0
    assert FORMATS["bf16"].max == pytest.approx(3.3895e38, rel=1e-4)
    for name, f in FORMATS.items():
        fi = torch.finfo(f.torch_dtype)
        assert (f.max, f.smallest_normal, f.eps) == (fi.max, fi.smallest_normal, fi.eps), name
    assert len(numerics.format_table()) == 5


def test_spacing_and_representable_values():
    assert float(numerics.spacing(1.0, "fp16")) == 2.0**-10
    assert float(numerics.spacing(1000.0, "bf16")) == 4.0
    vals = numerics.representable_values("fp8_e4m3")
    assert len(vals) == 127 and vals[-1] == 448.0
    assert torch.all(vals[1:] > vals[:-1])


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_spacing_at_zero_is_the_smallest_subnormal(fmt):
    tiny = FORMATS[fmt].smallest_subnormal
    assert float(numerics.spacing(0.0, fmt)) == tiny
    assert float(numerics.spacing(-0.0, fmt)) == tiny
    # a value that rounds to zero in fmt is measured from that zero
    gaps = numerics.spacing(torch.tensor([0.0, -0.0, tiny / 4, -tiny / 4]), fmt)
    assert gaps.tolist() == [tiny] * 4
    # ... and the gap from zero is the one the format's own values show
    if FORMATS[fmt].total_bits <= 16:
        assert numerics.representable_values(fmt)[1].item() == tiny


def _spacing_probe_values(dtype) -> np.ndarray:
    """Zeros, subnormals, the normal edge, powers of two, random magnitudes; both signs."""
    info = np.finfo(dtype)
    rng = np.random.default_rng(0)
    edges = [0.0, info.smallest_subnormal, 3 * info.smallest_subnormal,
             info.smallest_normal - info.smallest_subnormal, info.smallest_normal,
             0.5, 1.0, 1.5, 2.0, 3.0, 1000.0, float(info.max) / 2]
    powers = [2.0**e for e in range(int(info.minexp) - 2, int(info.maxexp))]
    magnitudes = 10.0 ** rng.uniform(math.log10(float(info.smallest_subnormal)),
                                     math.log10(float(info.max)) - 0.01, 500)
    values = np.concatenate([edges, powers, magnitudes]).astype(dtype)
    return np.concatenate([values, -values])


@pytest.mark.parametrize("fmt,dtype", [("fp16", np.float16), ("fp32", np.float32)])
def test_spacing_matches_numpy_spacing(fmt, dtype):
    values = _spacing_probe_values(dtype)
    assert np.signbit(values[values == 0]).any()  # -0.0 is among them
    ours = numerics.spacing(torch.from_numpy(values.astype(np.float64)), fmt).numpy()
    # The course's gap is measured from |x| upward; numpy's sign follows x (and for negative
    # float16 powers of two it measures toward zero), so compare with numpy at |x|.
    expected = np.spacing(np.abs(values)).astype(np.float64)
    np.testing.assert_array_equal(ours, expected)


@pytest.mark.parametrize("fmt,dtype", [("fp16", np.float16), ("fp32", np.float32)])
def test_spacing_at_the_largest_finite_value_is_the_top_binades_gap(fmt, dtype):
    top = np.finfo(dtype).max
    below = np.nextafter(top, dtype(0))
    # numpy says inf (its next float is inf); the course keeps the gap of the top binade,
    # the one that sets where rounding overflows: max + gap / 2.
    gap = float(np.spacing(below))
    assert gap == 2.0 ** (FORMATS[fmt].emax - FORMATS[fmt].man_bits)
    assert numerics.spacing(torch.tensor([float(top), -float(top)]), fmt).tolist() == [gap] * 2


def test_int_bits_twos_complement():
    assert int_bits(-1.0).bits == 0xFF and int_bits(-128.0).bits == 0x80
    assert int_bits(1e9).value == 127 and int_bits(-1e9).value == -128
    assert int_bits(2.5).value == 2 and int_bits(3.5).value == 4  # ties to even
    assert int_bits(7.7, bits=4).value == 7 and str(int_bits(-8, bits=4)) == "1000"
    assert int_bits(-1.0).pattern == int_bits(-1.0).bits == 0xFF  # bits: alias of pattern
    assert int_bits(3.0, bits=4).total_bits == 4


def test_nan_goes_through_float_formats_as_nan():
    """Float formats can hold NaN: it comes out as NaN, never as a number."""
    for fmt in FORMATS:
        assert math.isnan(round_to(math.nan, fmt))
        fb = float_bits(math.nan, fmt)
        assert math.isnan(fb.value) and fb.bits == fb.pattern
        out = round_to(torch.tensor([1.0, math.nan, 2.0]), fmt)
        assert out.isnan().tolist() == [False, True, False]
        assert decode(encode(torch.tensor([math.nan]), fmt), fmt).isnan().all()
        # the gap to the next number is undefined at NaN and at infinity
        gaps = numerics.spacing(torch.tensor([1.0, math.nan, math.inf]), fmt)
        assert gaps[0] > 0 and gaps[1:].isnan().all()


def test_decode_accepts_signed_views_of_the_same_width():
    x = torch.tensor([-2.5, 1.0, -0.0], dtype=torch.float16)
    assert torch.equal(decode(x.view(torch.int16), "fp16"), x.double())
    y = torch.tensor([-3.0, 0.5]).to(torch.float8_e4m3fn)
    assert torch.equal(decode(y.view(torch.int8), "fp8_e4m3"), y.double())


BAD_CALLS = [  # (call, exception, the argument the message must name)
    (lambda: round_to(1.0, "fp64"), ValueError, "fp64"),
    (lambda: round_to(1.0, 16), TypeError, "fmt"),
    (lambda: float_bits(1.0, "int8"), ValueError, "int8"),
    (lambda: encode(1.0, "e4m3"), ValueError, "e4m3"),
    (lambda: encode(1.0, "fp16", saturate="yes"), TypeError, "saturate"),
    (lambda: encode(torch.tensor([]), "fp16"), ValueError, "x is empty"),
    (lambda: encode(torch.tensor([True]), "fp16"), TypeError, "x"),
    (lambda: round_to(10**400, "fp32"), ValueError, "x"),
    (lambda: float_bits("3.14", "fp16"), TypeError, "x"),
    (lambda: float_bits(torch.ones(3), "fp16"), ValueError, "x must be one number"),
    (lambda: int_bits(1.0, bits=9), ValueError, "bits"),
    (lambda: int_bits(1.0, bits=0), ValueError, "bits"),
    (lambda: int_bits(1.0, bits=1.5), TypeError, "bits"),
    (lambda: int_bits(1.0, bits=99), ValueError, "bits"),
    (lambda: int_bits(math.nan), ValueError, "x"),
    (lambda: int_bits(math.inf), ValueError, "x"),
    (lambda: int_bits("1"), TypeError, "x"),
    (lambda: numerics.representable_values("fp32"), ValueError, "fmt"),
    (lambda: decode(torch.ones(2), "fp16"), TypeError, "bits"),
    (lambda: decode(1.7, "fp16"), TypeError, "bits"),
    (lambda: decode(-1, "fp16"), ValueError, "bits"),
    (lambda: decode(2**16, "fp16"), ValueError, "bits"),
    (lambda: decode(torch.tensor([300]), "fp8_e4m3"), ValueError, "bits"),
    (lambda: decode(torch.tensor([], dtype=torch.int64), "fp16"), ValueError, "bits"),
    (lambda: numerics.spacing(torch.tensor([]), "fp16"), ValueError, "x"),
    (lambda: numerics.FloatFormat("fp0", 0, 3), ValueError, "exp_bits"),
    (lambda: numerics.FloatFormat("fpx", 4, 2.5), TypeError, "man_bits"),
]


@pytest.mark.parametrize("call,exc,name", BAD_CALLS)
def test_bad_input_raises_naming_the_argument(call, exc, name):
    with pytest.raises(exc, match=name):
        call()


def test_bit_layout_diagram_draws_every_bit():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from course_lib import plots

    rows = [(name, list(zip(("sign", "exponent", "mantissa"), float_bits(math.pi, name).fields,
                            strict=True)), "pi") for name in FORMATS]
    fig = plots.bit_layout(rows, title="pi")
    n_bits = sum(FORMATS[name].total_bits for name in FORMATS)
    boxes = [p for p in fig.axes[0].patches if p.get_width() == 1]
    assert len(boxes) == n_bits  # one box per bit, nothing more
    fig.canvas.draw()  # renders
    plt.close(fig)
    with pytest.raises(ValueError, match="rows"):
        plots.bit_layout([])
    with pytest.raises(ValueError, match="kind"):
        plots.bit_layout([("x", [("fraction", "01")], "")])
    with pytest.raises(ValueError, match="bit string"):
        plots.bit_layout([("x", [("sign", "2")], "")])
