"""GPTQ and round-to-nearest, held to chapter 3's quantizer and to a brute-force OBS reference."""

import pytest
import torch

from course_lib import gptq, quant

pytestmark = pytest.mark.usefixtures("one_thread")


def layer(d_out=12, d_in=16, n=64, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(d_out, d_in, generator=g, dtype=dtype)
    # correlated inputs with uneven scales, like a real layer's activations
    mix = torch.randn(d_in, d_in, generator=g, dtype=dtype)
    x = torch.randn(n, d_in, generator=g, dtype=dtype) @ mix * torch.linspace(0.2, 3, d_in,
                                                                              dtype=dtype)
    return w, x


def brute_force_gptq(w, x, bits, group_size=None, damp=0.01):
    """Column-by-column Optimal Brain Surgeon updates, no Cholesky, no lazy batches: after
    quantizing column q, every remaining column moves by -(w_q - q(w_q)) [H_F^-1]_{q,:} /
    [H_F^-1]_qq with H_F^-1 the inverse Hessian of the columns not yet quantized, computed
    afresh by a matrix inverse each time."""
    w = w.clone()
    h = 2 * x.T @ x / x.shape[0]
    h = h + damp * torch.diag(h).mean() * torch.eye(len(h), dtype=h.dtype)
    d_in = w.shape[1]
    out = torch.zeros_like(w)
    if group_size is None:
        scale, zero = gptq.grid_params(w, bits)
    for q in range(d_in):
        if group_size is not None and q % group_size == 0:
            scale, zero = gptq.grid_params(w[:, q:q + group_size], bits)
        h_inv = torch.linalg.inv(h[q:, q:])            # columns q.. are still free
        wq = gptq.quantize_dequantize(w[:, q:q + 1], scale, zero, bits)[:, 0]
        out[:, q] = wq
        w[:, q:] -= ((w[:, q] - wq) / h_inv[0, 0])[:, None] * h_inv[0][None, :]
    return out


def test_rtn_equals_chapter3_zeropoint():
    w, _ = layer(d_out=32, d_in=64, dtype=torch.float32)
    for bits in (2, 3, 4, 8):
        for gs in (None, 16):
            ref = quant.dequantize(*quant.zeropoint_quantize(w, bits, dim=1, group_size=gs))
            torch.testing.assert_close(gptq.rtn_quantize(w, bits, gs), ref, rtol=0, atol=1e-6)


def test_rtn_levels_per_row():
    w, _ = layer(d_out=8, d_in=64, dtype=torch.float32)
    q = gptq.rtn_quantize(w, 3)
    for row in q:  # per-row grid: at most 2^3 distinct values in each row
        assert len(torch.unique(row)) <= 8
    assert len(torch.unique(q)) > 8  # but not one grid for the whole tensor


@pytest.mark.parametrize("group_size", [None, 4])
@pytest.mark.parametrize("bits", [2, 3, 4])
def test_gptq_equals_brute_force_obs(bits, group_size):
    w, x = layer()
    ref = brute_force_gptq(w, x, bits, group_size)
    for block in (1, 5, 8, 128):  # lazy batches change the order of sums, not the result
        out = gptq.gptq_quantize(w, x, bits, group_size=group_size, block_size=block)
        torch.testing.assert_close(out, ref, rtol=0, atol=1e-9)


def test_gptq_on_the_grid_and_better_than_rtn():
    w, x = layer(d_out=64, d_in=32, n=256)
    for bits in (2, 3, 4):
        out = gptq.gptq_quantize(w, x, bits)
        rtn = gptq.rtn_quantize(w, bits)
        assert gptq.layer_error(w, out, x) < 0.8 * gptq.layer_error(w, rtn, x)
        for row in out:
            assert len(torch.unique(row)) <= 2**bits


def test_act_order_and_float32():
    w, x = layer(d_out=64, d_in=32, n=256)
    a = gptq.gptq_quantize(w, x, 3, act_order=True)
    assert gptq.layer_error(w, a, x) < gptq.layer_error(w, gptq.rtn_quantize(w, 3), x)
    w32, x32 = w.float(), x.float()
    out = gptq.gptq_quantize(w32, x32, 4)
    assert out.dtype == torch.float32
    assert gptq.layer_error(w32, out, x32) < gptq.layer_error(w32, gptq.rtn_quantize(w32, 4), x32)


def test_singular_hessian():
    w, x = layer(d_in=16, n=4)  # 4 samples: X^T X has rank 4 < 16
    with pytest.raises(ValueError, match="singular"):
        gptq.gptq_quantize(w, x, 4, damp=0.0)
    out = gptq.gptq_quantize(w, x, 4, damp=0.01)  # damping makes it invertible
    assert torch.isfinite(out).all()
    x[:, 3] = 0  # a dead input: its weights are set to 0 and cost nothing
    assert gptq.gptq_quantize(w, x, 4)[:, 3].eq(0).all()


def test_bad_input():
    w, x = layer()
    for bits in (0, 1, 9, 2.5, True, None):
        with pytest.raises(ValueError, match="bits"):
            gptq.rtn_quantize(w, bits)
        with pytest.raises(ValueError, match="bits"):
            gptq.gptq_quantize(w, x, bits)
    with pytest.raises(ValueError, match="group_size"):
        gptq.rtn_quantize(w, 4, group_size=5)
    with pytest.raises(ValueError, match="group_size"):
        gptq.gptq_quantize(w, x, 4, group_size=0)
    with pytest.raises(ValueError, match="inputs"):
        gptq.gptq_quantize(w, x[:, :8], 4)
    with pytest.raises(TypeError, match="weight"):
        gptq.rtn_quantize(torch.ones(3, 4, dtype=torch.int64), 4)
    with pytest.raises(ValueError, match="weight"):
        gptq.rtn_quantize(torch.ones(4), 4)
    bad = w.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        gptq.rtn_quantize(bad, 4)
    with pytest.raises(ValueError, match="damp"):
        gptq.gptq_quantize(w, x, 4, damp=-1)
    with pytest.raises(ValueError, match="block_size"):
        gptq.gptq_quantize(w, x, 4, block_size=0)


# ---- cases that catch subtle bugs (tools/mutants.py breaks the module on purpose)
def test_grid_includes_zero_for_rows_of_one_sign():
    # 2 bits: 4 levels over [min(w, 0), max(w, 0)]. Row 1 spans [0, 4]: step 4/3, so
    # 1, 2, 3, 4 land on 4/3, 8/3, 8/3, 4 (2/1.333 = 1.5 rounds to the even level 2).
    # Row 2 spans [-4, 0] with zero point 3: -4, -3, -2, -1 land on -4, -8/3, -8/3, -4/3.
    # A grid over [min, max] alone would fit both rows exactly and lose the exact zero.
    w = torch.tensor([[1.0, 2.0, 3.0, 4.0], [-4.0, -3.0, -2.0, -1.0]], dtype=torch.float64)
    want = torch.tensor([[4 / 3, 8 / 3, 8 / 3, 4.0], [-4.0, -8 / 3, -8 / 3, -4 / 3]],
                        dtype=torch.float64)
    torch.testing.assert_close(gptq.rtn_quantize(w, 2), want, rtol=0, atol=1e-12)
    scale, zero = gptq.grid_params(w, 2)
    torch.testing.assert_close(zero[:, 0], torch.tensor([0.0, 3.0], dtype=torch.float64))
    # rows far from zero: a zero weight among large positive ones still comes back as 0
    w_pos = layer(d_out=4, d_in=16, dtype=torch.float32)[0].abs() + 1.0
    w_pos[:, 5] = 0.0
    assert gptq.rtn_quantize(w_pos, 3)[:, 5].eq(0).all()
    torch.testing.assert_close(gptq.rtn_quantize(w_pos, 3), quant.dequantize(
        *quant.zeropoint_quantize(w_pos, 3, dim=1)), rtol=0, atol=1e-6)
