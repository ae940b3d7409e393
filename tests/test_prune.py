"""Pruning: magnitude, Wanda, SparseGPT (held to a brute-force OBS reference), N:M patterns."""

import pytest
import torch

from course_lib import gptq, prune
from tests.test_gptq import layer

pytestmark = pytest.mark.usefixtures("one_thread")


def brute_force_sparsegpt(w, x, sparsity, block, n_m=None, damp=0.01):
    """Column by column, each update from a freshly inverted Hessian of the free columns; the
    mask is chosen at each block start (or each group of m) by the OBS saliency w^2/[H_F^-1]_jj
    of the current weights, where F is the set of columns from j on."""
    w = w.clone()
    h = 2 * x.T @ x / x.shape[0]
    h = h + damp * torch.diag(h).mean() * torch.eye(len(h), dtype=h.dtype)
    d_in = w.shape[1]
    inv_diag = torch.stack([torch.linalg.inv(h[j:, j:])[0, 0] for j in range(d_in)])
    mask = torch.zeros_like(w, dtype=torch.bool)
    for j in range(d_in):
        if n_m is None and j % block == 0:
            j2 = min(j + block, d_in)
            k = round(sparsity * j2) - round(sparsity * j)
            sal = w[:, j:j2] ** 2 / inv_diag[j:j2]
            for r in range(w.shape[0]):
                mask[r, j + torch.argsort(sal[r])[:k]] = True
        if n_m is not None and j % n_m[1] == 0:
            sal = w[:, j:j + n_m[1]] ** 2 / inv_diag[j:j + n_m[1]]
            for r in range(w.shape[0]):
                mask[r, j + torch.argsort(sal[r])[:n_m[1] - n_m[0]]] = True
        h_inv = torch.linalg.inv(h[j:, j:])
        err = torch.where(mask[:, j], w[:, j], torch.zeros_like(w[:, j]))
        w[:, j:] -= (err / h_inv[0, 0])[:, None] * h_inv[0][None, :]
        w[mask[:, j], j] = 0
    return w


def zeros_per_row(w):
    return (w == 0).sum(dim=1)


@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.5, 0.75])
def test_magnitude_keeps_the_largest_per_row(sparsity):
    w, _ = layer(d_out=16, d_in=40)
    p = prune.magnitude_prune(w, sparsity)
    assert zeros_per_row(p).eq(round(sparsity * 40)).all()  # per row, not per tensor
    for row, orig in zip(p, w):
        kept, dropped = orig[row != 0].abs(), orig[row == 0].abs()
        if len(dropped):
            assert kept.min() >= dropped.max()
        torch.testing.assert_close(row[row != 0], orig[row != 0], rtol=0, atol=0)


def test_wanda_is_magnitude_of_scaled_weights():
    w, x = layer(d_out=16, d_in=40)
    norms = x.norm(dim=0)
    mask_wanda = prune.wanda_prune(w, x, 0.5) == 0
    mask_scaled = prune.magnitude_prune(w * norms, 0.5) == 0
    assert torch.equal(mask_wanda, mask_scaled)
    # with equal input norms Wanda is magnitude pruning
    assert torch.equal(prune.wanda_prune(w, torch.ones(5, 40, dtype=w.dtype), 0.5),
                       prune.magnitude_prune(w, 0.5))


@pytest.mark.parametrize("sparsity,block", [(0.5, 64), (0.5, 8), (0.3, 7), (0.8, 16)])
def test_sparsegpt_equals_brute_force_obs(sparsity, block):
    w, x = layer(d_out=12, d_in=32, n=128)
    ref = brute_force_sparsegpt(w, x, sparsity, block)
    out = prune.sparsegpt_prune(w, x, sparsity, block_size=block)
    assert torch.equal(out == 0, ref == 0)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-9)
    assert zeros_per_row(out).eq(round(sparsity * 32)).all()


def test_sparsegpt_two_four_equals_brute_force():
    w, x = layer(d_out=12, d_in=32, n=128)
    ref = brute_force_sparsegpt(w, x, 0.5, block=32, n_m=(2, 4))
    for block in (4, 8, 10, 128):
        out = prune.sparsegpt_prune(w, x, 0.5, n_m=(2, 4), block_size=block)
        torch.testing.assert_close(out, ref, rtol=0, atol=1e-9)
    assert (out.reshape(12, 8, 4) != 0).sum(-1).eq(2).all()


@pytest.mark.parametrize("n_m", [(2, 4), (1, 4), (4, 8)])
def test_n_m_patterns(n_m):
    w, x = layer(d_out=16, d_in=32)
    n, m = n_m
    s = 1 - n / m
    for p in (prune.magnitude_prune(w, s, n_m=n_m), prune.wanda_prune(w, x, s, n_m=n_m),
              prune.sparsegpt_prune(w, x, s, n_m=n_m)):
        assert (p.reshape(16, 32 // m, m) != 0).sum(-1).eq(n).all()


def test_sparsegpt_repairs_the_layer():
    w, x = layer(d_out=64, d_in=64, n=512)
    for s in (0.5, 0.7):
        err = {name: gptq.layer_error(w, p, x) for name, p in [
            ("magnitude", prune.magnitude_prune(w, s)),
            ("wanda", prune.wanda_prune(w, x, s)),
            ("sparsegpt", prune.sparsegpt_prune(w, x, s))]}
        assert err["sparsegpt"] < 0.9 * err["wanda"] < 0.9 * err["magnitude"]
    out = prune.sparsegpt_prune(w.float(), x.float(), 0.5)
    assert out.dtype == torch.float32 and zeros_per_row(out).eq(32).all()


def test_bad_input():
    w, x = layer(d_out=8, d_in=18)
    for s in (-0.1, 1.0, 1.5, float("nan"), True, "0.5", None):
        with pytest.raises(ValueError, match="sparsity"):
            prune.magnitude_prune(w, s)
        with pytest.raises(ValueError, match="sparsity"):
            prune.wanda_prune(w, x, s)
        with pytest.raises(ValueError, match="sparsity"):
            prune.sparsegpt_prune(w, x, s)
    for fn in (lambda n_m: prune.magnitude_prune(w, 0.5, n_m=n_m),
               lambda n_m: prune.sparsegpt_prune(w, x, 0.5, n_m=n_m)):
        with pytest.raises(ValueError, match="not divisible by m=4"):
            fn((2, 4))  # 18 columns
        with pytest.raises(ValueError, match="n_m"):
            fn((3, 2))
        with pytest.raises(ValueError, match="n_m"):
            fn("2:4")
    w2, x2 = layer(d_out=8, d_in=16)
    with pytest.raises(ValueError, match="disagrees"):
        prune.sparsegpt_prune(w2, x2, 0.3, n_m=(2, 4))
    with pytest.raises(ValueError, match="inputs"):
        prune.wanda_prune(w2, x, 0.5)
    with pytest.raises(TypeError, match="weight"):
        prune.magnitude_prune([[1.0, 2.0]], 0.5)
    _, few = layer(d_out=8, d_in=16, n=3)
    with pytest.raises(ValueError, match="singular"):
        prune.sparsegpt_prune(w2, few, 0.5, damp=0.0)
    assert torch.isfinite(prune.sparsegpt_prune(w2, few, 0.5)).all()
