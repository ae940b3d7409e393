"""Bit layouts and rounding of the number formats LLMs are stored in.

Taught in book/03_quantization.md.

Every floating-point format here is ``1 sign bit | k exponent bits | m mantissa bits``.
A stored exponent field ``E`` and mantissa field ``M`` encode

* normal numbers (``0 < E < 2**k - 1``):  ``(-1)**s * 2**(E - bias) * (1 + M / 2**m)``
* subnormals (``E == 0``):               ``(-1)**s * 2**(1 - bias) * (M / 2**m)``
* specials (``E == 2**k - 1``): infinity (``M == 0``) and NaN (``M != 0``), IEEE 754 style,

with ``bias = 2**(k - 1) - 1``. FP8 E4M3 (``float8_e4m3fn``, OCP OFP8) is the exception: it
has no infinities and a single NaN mantissa (``S.1111.111``), so the top exponent field holds
ordinary numbers up to ``S.1111.110 = 448``.

Everything below is computed from that layout with exact float64 arithmetic, never by calling
the dtype cast that the tests hold it against (``torch.Tensor.to``). Rounding is
round-to-nearest, ties-to-even. Overflow goes to infinity, except for E4M3 which has none:
there ``saturate=True`` (the default, what recent torch does on CPU since
pytorch/pytorch#178817: finite overflow *and* infinities become +-448) or ``saturate=False``
(the OCP non-saturating mode, what older torch and ml_dtypes do: NaN).

Words: ``bits`` is always a width (how many bits a format or a code has); the stored bit
pattern of one value is its ``pattern`` (``FloatBits.bits`` is kept as an alias of
``FloatBits.pattern`` because DESIGN.md names it). There is one ``FORMATS``: the floating-point
formats here; ``course_lib.quant`` calls its list of weight formats ``WEIGHT_FORMATS``.

Bad input and NaN: every public function raises ``TypeError`` (wrong type) or ``ValueError``
(wrong value: empty, out of range) naming the argument. The float formats can hold NaN, so
NaN goes *through* :func:`encode`, :func:`round_to`, :func:`float_bits` and :func:`decode` as
NaN (the canonical NaN pattern), and :func:`spacing` of NaN or infinity is NaN. Integers cannot
hold NaN: :func:`int_bits` raises on NaN and infinity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = [
    "FORMATS",
    "FloatFormat",
    "FloatBits",
    "IntBits",
    "decode",
    "encode",
    "float_bits",
    "format_table",
    "int_bits",
    "representable_values",
    "round_to",
    "spacing",
]


@dataclass(frozen=True)
class FloatFormat:
    """A binary floating-point format: 1 sign bit, ``exp_bits``, ``man_bits``."""

    name: str
    exp_bits: int
    man_bits: int
    ieee_specials: bool = True  # False: E4M3 style, no inf, NaN only at all-ones

    def __post_init__(self):
        for arg in ("exp_bits", "man_bits"):
            v = getattr(self, arg)
            if isinstance(v, bool) or not isinstance(v, int):
                raise TypeError(f"{arg} must be an int, got {type(v).__name__}")
        if not 2 <= self.exp_bits <= 8:
            raise ValueError(f"exp_bits must lie in 2..8 (fp32's 8 at most), got {self.exp_bits}")
        if not 1 <= self.man_bits <= 23:
            raise ValueError(f"man_bits must lie in 1..23 (fp32's 23 at most), got {self.man_bits}")
        if not isinstance(self.ieee_specials, bool):
            raise TypeError(f"ieee_specials must be a bool, got {self.ieee_specials!r}")

    @property
    def total_bits(self) -> int:
        return 1 + self.exp_bits + self.man_bits

    @property
    def bias(self) -> int:
        """Exponent bias, ``2**(k-1) - 1`` for k exponent bits (127 for fp32, 15 for fp16)."""
        return 2 ** (self.exp_bits - 1) - 1

    @property
    def emax(self) -> int:
        """Largest true exponent of a finite number."""
        top_field = 2**self.exp_bits - 1
        return (top_field - 1 if self.ieee_specials else top_field) - self.bias

    @property
    def emin(self) -> int:
        """True exponent of the smallest normal number (and of every subnormal)."""
        return 1 - self.bias

    @property
    def max(self) -> float:
        """Largest finite value."""
        if self.ieee_specials:
            frac = 2 - 2.0**-self.man_bits  # 1.111...1
        else:  # the all-ones mantissa at the top exponent is NaN, so one step less
            frac = 2 - 2.0 ** (1 - self.man_bits)  # 1.11...10
        return frac * 2.0**self.emax

    @property
    def smallest_normal(self) -> float:
        return 2.0**self.emin

    @property
    def smallest_subnormal(self) -> float:
        return 2.0 ** (self.emin - self.man_bits)

    @property
    def eps(self) -> float:
        """Machine epsilon: the gap between 1 and the next representable number."""
        return 2.0**-self.man_bits

    @property
    def has_inf(self) -> bool:
        return self.ieee_specials

    @property
    def n_nan_patterns(self) -> int:
        """How many of the ``2**total_bits`` bit patterns are NaN."""
        if self.ieee_specials:
            return 2 * (2**self.man_bits - 1)
        return 2

    @property
    def special_values(self) -> str:
        if self.ieee_specials:
            return f"+-0, +-inf, {self.n_nan_patterns} NaN patterns"
        return "+-0, no inf, 2 NaN patterns (S.1111.111)"

    @property
    def torch_dtype(self) -> torch.dtype:
        return _TORCH_DTYPES[self.name]


FORMATS: dict[str, FloatFormat] = {
    "fp32": FloatFormat("fp32", 8, 23),
    "fp16": FloatFormat("fp16", 5, 10),
    "bf16": FloatFormat("bf16", 8, 7),
    "fp8_e4m3": FloatFormat("fp8_e4m3", 4, 3, ieee_specials=False),
    "fp8_e5m2": FloatFormat("fp8_e5m2", 5, 2),
}

_CHUNK = 1 << 18  # elements per piece in encode(), to keep memory flat on large tensors

_TORCH_DTYPES = {
    "fp32": torch.float32,
    "fp16": torch.float16,
    "bf16": torch.bfloat16,
    "fp8_e4m3": torch.float8_e4m3fn,
    "fp8_e5m2": torch.float8_e5m2,
}


def get_format(fmt: str | FloatFormat) -> FloatFormat:
    """Look a format up by name; ``ValueError`` for an unknown one, ``TypeError`` for a non-str."""
    if isinstance(fmt, FloatFormat):
        return fmt
    if not isinstance(fmt, str):
        raise TypeError(f"fmt must be a format name (str), got {type(fmt).__name__}")
    if fmt not in FORMATS:
        raise ValueError(f"unknown float format {fmt!r}; expected one of {sorted(FORMATS)}")
    return FORMATS[fmt]


def _as_float64(x, name: str = "x") -> tuple[torch.Tensor, bool]:
    """Return ``x`` as a float64 tensor and whether it came in as a Python scalar."""
    if isinstance(x, torch.Tensor):
        if not (x.is_floating_point() or x.dtype in (torch.int64, torch.int32)):
            raise TypeError(f"{name} must be a real (floating-point or int) tensor, "
                            f"got dtype {x.dtype}")
        if x.numel() == 0:
            raise ValueError(f"{name} is empty")
        return x.detach().to(torch.float64), False
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise TypeError(f"{name} must be a real number or tensor, got {type(x).__name__}")
    try:
        return torch.tensor(float(x), dtype=torch.float64), True
    except OverflowError:  # an int beyond float64, e.g. 10**400
        raise ValueError(f"{name} = {x} is too large for float64") from None


def _check_saturate(saturate) -> None:
    if saturate is not None and not isinstance(saturate, bool):
        raise TypeError(f"saturate must be True, False or None, got {saturate!r}")


def encode(x, fmt: str | FloatFormat, saturate: bool | None = None) -> torch.Tensor:
    """Round ``x`` to ``fmt`` and return the bit patterns (int64 tensor, unsigned value).

    ``saturate`` (default: True for E4M3, False otherwise) sends values whose rounded magnitude
    exceeds the largest finite number to +-max instead of inf (or NaN for E4M3).
    """
    f = get_format(fmt)
    _check_saturate(saturate)
    xt, _ = _as_float64(x)
    if xt.numel() > _CHUNK:  # bound the float64 temporaries: work through big inputs in pieces
        parts = [encode(c, f, saturate) for c in xt.reshape(-1).split(_CHUNK)]
        return torch.cat(parts).reshape(xt.shape)
    if saturate is None:
        saturate = not f.ieee_specials
    m, k = f.man_bits, f.exp_bits
    sign = torch.signbit(xt).to(torch.int64)
    a = xt.abs()
    finite = torch.isfinite(a)
    a_fin = torch.where(finite, a, torch.zeros_like(a))

    # True exponent e with 2**e <= a < 2**(e+1); frexp gives a = mant * 2**E, mant in [0.5, 1).
    _, e = torch.frexp(a_fin)
    e = (e.to(torch.int64) - 1).clamp(min=f.emin)  # below emin the spacing stops shrinking
    # Integer significand in units of the spacing 2**(e - m); exact in float64 (power-of-2 scale).
    q = torch.round(torch.ldexp(a_fin, (m - e).to(torch.float64)))  # ties to even
    q = q.to(torch.int64)
    carry = q >= 2 ** (m + 1)  # rounding up to the next binade: 1.111.. -> 10.000..
    q = torch.where(carry, q // 2, q)
    e = e + carry.to(torch.int64)
    normal = q >= 2**m
    exp_field = torch.where(normal, e + f.bias, torch.zeros_like(e))
    man_field = torch.where(normal, q - 2**m, q)
    bits = (sign << (k + m)) | (exp_field << m) | man_field

    max_bits = _finite_max_bits(f)
    nan_bits = (2 ** (k + m + 1) - 1) >> 1 if not f.ieee_specials else _ieee_nan_bits(f)
    inf_bits = ((2**k - 1) << m) if f.ieee_specials else None
    overflow = finite & ((exp_field > f.emax + f.bias) | ((bits & ((1 << (k + m)) - 1)) > max_bits))
    sign_bit = sign << (k + m)
    if saturate:
        bits = torch.where(overflow, sign_bit | max_bits, bits)
    elif f.ieee_specials:
        bits = torch.where(overflow, sign_bit | inf_bits, bits)
    else:
        bits = torch.where(overflow, sign_bit | nan_bits, bits)
    isinf = torch.isinf(xt)
    if f.ieee_specials:
        bits = torch.where(isinf, sign_bit | inf_bits, bits)
    elif saturate:
        bits = torch.where(isinf, sign_bit | max_bits, bits)
    else:
        bits = torch.where(isinf, sign_bit | nan_bits, bits)
    bits = torch.where(torch.isnan(xt), torch.full_like(bits, nan_bits), bits)
    return bits


def _finite_max_bits(f: FloatFormat) -> int:
    """Bit pattern (sign 0) of the largest finite value."""
    if f.ieee_specials:
        return ((2**f.exp_bits - 2) << f.man_bits) | (2**f.man_bits - 1)
    return ((2**f.exp_bits - 1) << f.man_bits) | (2**f.man_bits - 2)


def _ieee_nan_bits(f: FloatFormat) -> int:
    """The canonical quiet NaN: all-ones exponent, top mantissa bit set."""
    return ((2**f.exp_bits - 1) << f.man_bits) | (1 << (f.man_bits - 1))


def decode(bits, fmt: str | FloatFormat) -> torch.Tensor:
    """The value (float64 tensor) of each bit pattern (an int or integer tensor).

    ``bits`` holds unsigned patterns in ``0 .. 2**total_bits - 1``; a signed integer tensor of
    exactly the format's width (``x.view(torch.int16)`` of an fp16 tensor) is read as the
    same patterns. Anything else out of range raises ``ValueError``.
    """
    f = get_format(fmt)
    n = f.total_bits
    if isinstance(bits, torch.Tensor):
        if bits.is_floating_point() or bits.is_complex() or bits.dtype == torch.bool:
            raise TypeError(f"bits must hold integer bit patterns, got dtype {bits.dtype}")
        if bits.numel() == 0:
            raise ValueError("bits is empty")
        b = bits.to(torch.int64)
        signed_view = {8: torch.int8, 16: torch.int16, 32: torch.int32}.get(n) == bits.dtype
        if signed_view:
            b = b & ((1 << n) - 1)
    elif isinstance(bits, int) and not isinstance(bits, bool):
        b = torch.tensor(bits, dtype=torch.int64) if -(2**63) <= bits < 2**63 else None
        if b is None:
            raise ValueError(f"bits = {bits} is not a {n}-bit pattern")
    else:
        raise TypeError(f"bits must be an int or an integer tensor, got {type(bits).__name__}")
    if bool((b < 0).any()) or bool((b >= 1 << n).any()):
        raise ValueError(f"bits must lie in 0..{2**n - 1} for {f.name} ({n}-bit patterns)")
    m, k = f.man_bits, f.exp_bits
    s = (b >> (k + m)) & 1
    ef = (b >> m) & (2**k - 1)
    mf = b & (2**m - 1)
    sign = 1.0 - 2.0 * s.to(torch.float64)
    subnormal = ef == 0
    significand = torch.where(subnormal, mf.to(torch.float64), (mf + 2**m).to(torch.float64))
    exponent = torch.where(subnormal, torch.full_like(ef, f.emin), ef - f.bias) - m
    val = sign * torch.ldexp(significand, exponent.to(torch.float64))
    top = ef == 2**k - 1
    if f.ieee_specials:
        val = torch.where(top & (mf == 0), sign * math.inf, val)
        val = torch.where(top & (mf != 0), torch.full_like(val, math.nan), val)
    else:
        val = torch.where(top & (mf == 2**m - 1), torch.full_like(val, math.nan), val)
    return val


def round_to(x, fmt: str | FloatFormat, saturate: bool | None = None):
    """Round ``x`` to the nearest ``fmt`` value (ties to even); float in, float out.

    A tensor in gives a float64 tensor out (the rounded values, exactly).
    """
    _, scalar = _as_float64(x)
    out = decode(encode(x, fmt, saturate=saturate), fmt)
    return float(out) if scalar else out


@dataclass(frozen=True)
class FloatBits:
    """One value's bit fields in a format; ``value`` is what the bits encode."""

    fmt: str
    sign: int
    exponent: int  # the stored (biased) exponent field
    mantissa: int  # the stored fraction field, without the implicit leading 1
    pattern: int  # the whole pattern as an unsigned integer
    value: float

    @property
    def bits(self) -> int:
        """The bit pattern (alias of ``pattern``; the name DESIGN.md lists)."""
        return self.pattern

    @property
    def format(self) -> FloatFormat:
        return FORMATS[self.fmt]

    @property
    def true_exponent(self) -> int:
        """Stored exponent minus the bias (``emin`` for subnormals)."""
        f = self.format
        return f.emin if self.exponent == 0 else self.exponent - f.bias

    @property
    def fields(self) -> tuple[str, str, str]:
        """The sign, exponent and mantissa fields as bit strings."""
        f = self.format
        return (
            str(self.sign),
            format(self.exponent, f"0{f.exp_bits}b"),
            format(self.mantissa, f"0{f.man_bits}b"),
        )

    def __str__(self) -> str:
        return " ".join(self.fields)


def float_bits(x: float, fmt: str | FloatFormat, saturate: bool | None = None) -> FloatBits:
    """Round a number to ``fmt`` and split the result into its bit fields.

    >>> float_bits(3.141592653589793, "fp16").value
    3.140625
    """
    f = get_format(fmt)
    _check_saturate(saturate)
    xt, _ = _as_float64(x)
    if xt.numel() != 1:
        raise ValueError(f"x must be one number, got {xt.numel()} values; use encode/decode "
                         "for tensors")
    b = int(encode(xt.reshape(()), f, saturate=saturate))
    return FloatBits(
        fmt=f.name,
        sign=b >> (f.exp_bits + f.man_bits),
        exponent=(b >> f.man_bits) & (2**f.exp_bits - 1),
        mantissa=b & (2**f.man_bits - 1),
        pattern=b,
        value=float(decode(b, f)),
    )


def spacing(x, fmt: str | FloatFormat) -> torch.Tensor:
    """Gap between ``|x|`` (rounded to ``fmt``) and the next larger representable magnitude.

    Positive whatever the sign of ``x``, and equal to ``numpy.spacing(abs(x))`` in fp16 and
    fp32: at +0 and -0 it is the smallest subnormal. At the largest finite value it is that
    binade's gap, ``2**(emax - man_bits)``, where numpy gives inf (its next float). NaN where
    ``x`` (rounded) is NaN or infinite: there is no next number to measure to.
    """
    f = get_format(fmt)
    xt, _ = _as_float64(x)
    a = round_to(xt.abs(), f, saturate=False)
    finite = torch.isfinite(a)
    _, e = torch.frexp(torch.where(finite, a, torch.zeros_like(a)))
    # frexp puts 0 at exponent 0, which the clamp would keep; zero lies in the subnormal binade.
    e = torch.where(a == 0, f.emin, e - 1).clamp(min=f.emin)
    gap = torch.ldexp(torch.ones_like(a), (e - f.man_bits).to(torch.float64))
    return torch.where(finite, gap, torch.full_like(gap, math.nan))


def representable_values(fmt: str | FloatFormat) -> torch.Tensor:
    """All non-negative finite values of a format with at most 16 bits, ascending (float64)."""
    f = get_format(fmt)
    if f.total_bits > 16:
        raise ValueError(f"fmt {f.name} has 2**{f.total_bits} patterns; enumerate formats of at "
                         "most 16 bits")
    vals = decode(torch.arange(2 ** (f.total_bits - 1)), f)  # sign bit 0
    return vals[torch.isfinite(vals)]


def format_table() -> list[dict]:
    """One row per format: layout, bias, range, smallest normal/subnormal, epsilon, specials."""
    rows = []
    for f in FORMATS.values():
        rows.append(
            {
                "format": f.name,
                "bits": f.total_bits,
                "sign/exp/mantissa": f"1/{f.exp_bits}/{f.man_bits}",
                "bias": f.bias,
                "max": f.max,
                "smallest normal": f.smallest_normal,
                "smallest subnormal": f.smallest_subnormal,
                "epsilon": f.eps,
                "specials": f.special_values,
            }
        )
    return rows


@dataclass(frozen=True)
class IntBits:
    """A value rounded to a signed integer of ``total_bits`` bits and its two's-complement
    pattern (``bits`` is an alias of ``pattern``, as on :class:`FloatBits`)."""

    total_bits: int
    value: int
    pattern: int  # unsigned

    @property
    def bits(self) -> int:
        return self.pattern

    def __str__(self) -> str:
        return format(self.pattern, f"0{self.total_bits}b")


def int_bits(x: float, bits: int = 8) -> IntBits:
    """Round ``x`` to the nearest signed ``bits``-bit integer (ties to even, clamped).

    Two's complement: range ``-2**(bits-1) .. 2**(bits-1) - 1`` (-128..127 for int8). The top
    bit is not a sign-and-magnitude sign bit: it carries weight ``-2**(bits-1)``. An integer
    cannot hold NaN or infinity, so those raise ``ValueError``.
    """
    if isinstance(bits, bool) or not isinstance(bits, int):
        raise TypeError(f"bits must be an int, got {bits!r}")
    if not 2 <= bits <= 8:
        raise ValueError(f"bits must lie in 2..8, got {bits}")
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise TypeError(f"x must be a real number, got {type(x).__name__}")
    if isinstance(x, float) and not math.isfinite(x):
        raise ValueError(f"x = {x} cannot be rounded to an integer format")
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    v = int(min(max(round(x), lo), hi))  # Python's round is ties-to-even
    return IntBits(total_bits=bits, value=v, pattern=v & (2**bits - 1))
