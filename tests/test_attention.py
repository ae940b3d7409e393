"""The course's attention held to torch's scaled_dot_product_attention."""
import pytest
import torch
import torch.nn.functional as F

from course_lib.attention import (
    KVCache,
    MultiHeadAttention,
    causal_mask,
    padding_mask,
    repeat_kv,
    scaled_dot_product_attention,
    softmax,
)

TOL = dict(atol=1e-5, rtol=1e-5)


def test_softmax_matches_torch_and_is_stable():
    x = torch.randn(4, 7, generator=torch.Generator().manual_seed(0)) * 50
    torch.testing.assert_close(softmax(x), torch.softmax(x, -1), **TOL)
    big = torch.tensor([1000.0, 1001.0, 1002.0])
    assert torch.isfinite(softmax(big)).all()
    torch.testing.assert_close(softmax(big).sum(), torch.tensor(1.0))
    assert torch.equal(softmax(torch.full((3,), float("-inf"))), torch.zeros(3))


def test_causal_mask():
    m = causal_mask(4)
    assert m.dtype == torch.bool and m.shape == (4, 4)
    assert torch.equal(m, torch.tril(torch.ones(4, 4, dtype=torch.bool)))
    # two new queries after three cached keys: the last two rows of a 5x5 causal mask
    assert torch.equal(causal_mask(2, 5), causal_mask(5)[-2:])
    with pytest.raises(ValueError, match="n_q <= n_k"):
        causal_mask(5, 3)


@pytest.mark.parametrize("n_q, n_k, d", [(1, 1, 4), (5, 5, 8), (7, 13, 16), (33, 33, 3)])
def test_sdpa_matches_torch(n_q, n_k, d):
    g = torch.Generator().manual_seed(n_q * 100 + n_k)
    q, k, v = (torch.randn(2, 3, n, d, generator=g) for n in (n_q, n_k, n_k))
    out, w = scaled_dot_product_attention(q, k, v)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v), **TOL)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 3, n_q), **TOL)
    scale = 0.3
    out_s, _ = scaled_dot_product_attention(q, k, v, scale=scale)
    torch.testing.assert_close(out_s, F.scaled_dot_product_attention(q, k, v, scale=scale), **TOL)


@pytest.mark.parametrize("n", [1, 6, 17])
def test_sdpa_causal_and_padding_masks(n):
    g = torch.Generator().manual_seed(n)
    q, k, v = (torch.randn(3, 2, n, 8, generator=g) for _ in range(3))
    out, w = scaled_dot_product_attention(q, k, v, mask=causal_mask(n))
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, is_causal=True), **TOL)
    assert (w.triu(1) == 0).all()
    lengths = torch.tensor([n, max(1, n - 2), 1])
    pad = padding_mask(lengths, n)                      # (3, 1, 1, n)
    out, w = scaled_dot_product_attention(q, k, v, mask=pad)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=pad), **TOL)
    assert (w[2, :, :, 1:] == 0).all()                  # only one real key in sequence 2


def test_sdpa_bad_input():
    q = torch.randn(2, 4, 8)
    with pytest.raises(ValueError, match="last dim"):
        scaled_dot_product_attention(q, torch.randn(2, 4, 7), torch.randn(2, 4, 7))
    with pytest.raises(ValueError, match="same length"):
        scaled_dot_product_attention(q, q, torch.randn(2, 5, 8))
    with pytest.raises(ValueError, match="at least 2 dims"):
        scaled_dot_product_attention(torch.randn(8), q, q)
    with pytest.raises(ValueError, match="bool"):
        scaled_dot_product_attention(q, q, q, mask=torch.ones(4, 4))


def _reference_mha(mha, x, mask=None, is_causal=False):
    """The same projections, with torch SDPA (enable_gqa) doing the attention."""
    b, t, c = x.shape
    hd = mha.head_dim
    q = mha.q_proj(x).view(b, t, mha.n_heads, hd).transpose(1, 2)
    k = mha.k_proj(x).view(b, t, mha.n_kv_heads, hd).transpose(1, 2)
    v = mha.v_proj(x).view(b, t, mha.n_kv_heads, hd).transpose(1, 2)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal,
                                         enable_gqa=True)
    return mha.out_proj(out.transpose(1, 2).reshape(b, t, c))


@pytest.mark.parametrize("n_heads, n_kv_heads", [(4, 4), (4, 2), (4, 1), (6, 3), (6, 1)])
@pytest.mark.parametrize("t", [1, 5, 12])
def test_mha_gqa_mqa_match_torch(n_heads, n_kv_heads, t):
    torch.manual_seed(0)
    mha = MultiHeadAttention(24, n_heads, n_kv_heads)
    x = torch.randn(2, t, 24)
    torch.testing.assert_close(mha(x), _reference_mha(mha, x), **TOL)
    torch.testing.assert_close(mha(x, mask=causal_mask(t)),
                               _reference_mha(mha, x, is_causal=True), **TOL)
    pad = padding_mask(torch.tensor([t, max(1, t - 3)]), t)
    torch.testing.assert_close(mha(x, mask=pad), _reference_mha(mha, x, mask=pad), **TOL)
    out, w = mha(x, need_weights=True)
    assert w.shape == (2, n_heads, t, t)
    assert mha.k_proj.out_features == n_kv_heads * 24 // n_heads


def test_kv_cache_equals_full_causal_pass():
    torch.manual_seed(1)
    mha = MultiHeadAttention(16, 4, 2)
    x = torch.randn(1, 9, 16)
    full = mha(x, mask=causal_mask(9))
    cache = KVCache()
    steps = [mha(x[:, :4], mask=causal_mask(4), kv_cache=cache)]     # prefill 4 tokens
    for i in range(4, 9):                                            # then one at a time
        steps.append(mha(x[:, i:i + 1], mask=causal_mask(1, i + 1), kv_cache=cache))
    torch.testing.assert_close(torch.cat(steps, dim=1), full, **TOL)
    assert len(cache) == 9
    assert cache.k.shape == (1, 2, 9, 4)
    assert cache.nbytes() == 2 * 9 * 2 * 4 * 4


def test_cross_attention_uses_context_length():
    mha = MultiHeadAttention(8, 2)
    out, w = mha(torch.randn(1, 3, 8), context=torch.randn(1, 5, 8), need_weights=True)
    assert out.shape == (1, 3, 8) and w.shape == (1, 2, 3, 5)


def test_repeat_kv():
    x = torch.arange(2 * 3 * 4).float().view(1, 2, 3, 4)
    r = repeat_kv(x, 3)
    assert r.shape == (1, 6, 3, 4)
    assert torch.equal(r[0, 0], r[0, 2]) and torch.equal(r[0, 3], x[0, 1])


@pytest.mark.parametrize("d_model, n_heads, n_kv, match", [
    (10, 3, None, "must divide d_model"),
    (12, 4, 3, "must divide n_heads"),
    (12, 0, None, "n_heads must be >= 1"),
    (12, 4, 0, "n_kv_heads must be >= 1"),
])
def test_mha_bad_config(d_model, n_heads, n_kv, match):
    with pytest.raises(ValueError, match=match):
        MultiHeadAttention(d_model, n_heads, n_kv)


def test_mha_bad_input_shape():
    with pytest.raises(ValueError, match=r"\(B, T, 8\)"):
        MultiHeadAttention(8, 2)(torch.randn(3, 7))


# -------------------------------------------------------------------------------- bad input
def _qkv(n_q=3, n_k=4, d=8):
    return torch.randn(2, n_q, d), torch.randn(2, n_k, d), torch.randn(2, n_k, d)


@pytest.mark.parametrize("call, error, match", [
    (lambda: causal_mask(2.5), TypeError, "n_q must be an int"),
    (lambda: causal_mask(True), TypeError, "n_q must be an int"),
    (lambda: causal_mask(-1), ValueError, "n_q must be >= 0"),
    (lambda: causal_mask(2, 3.0), TypeError, "n_k must be an int"),
    (lambda: repeat_kv(torch.randn(1, 2, 3, 4), 0), ValueError, "n_rep must be >= 1"),
    (lambda: repeat_kv(torch.randn(1, 2, 3, 4), 1.5), TypeError, "n_rep must be an int"),
    (lambda: repeat_kv(torch.randn(2, 3, 4), 2), ValueError, "x must have 4 dims"),
    (lambda: padding_mask(torch.tensor([1.5]), 3), TypeError, "lengths must be an integer"),
    (lambda: padding_mask(torch.tensor([4]), 3), ValueError, "lengths must lie in"),
    (lambda: padding_mask(torch.tensor([1]), -1), ValueError, "n must be >= 0"),
    (lambda: scaled_dot_product_attention(*_qkv(n_k=0)), ValueError, "0 keys"),
    (lambda: scaled_dot_product_attention(*_qkv(d=0)), ValueError, "head dim"),
    (lambda: scaled_dot_product_attention(*[t.long() for t in _qkv()]), TypeError,
     "q must be a floating-point"),
    (lambda: scaled_dot_product_attention([[1.0]], [[1.0]], [[1.0]]), TypeError,
     "q must be a torch.Tensor"),
    (lambda: scaled_dot_product_attention(*_qkv()[:2], _qkv()[2].double()), TypeError,
     "share a dtype"),
    (lambda: scaled_dot_product_attention(torch.randn(2, 3, 8), torch.randn(3, 4, 8),
                                          torch.randn(3, 4, 8)), ValueError, "broadcast"),
    (lambda: scaled_dot_product_attention(*_qkv(), mask=torch.ones(5, 4, dtype=torch.bool)),
     ValueError, "mask of shape"),
    (lambda: scaled_dot_product_attention(*_qkv(), scale=float("nan")), ValueError,
     "scale must be finite"),
    (lambda: MultiHeadAttention(8.0, 2), TypeError, "d_model must be an int"),
    (lambda: MultiHeadAttention(8, 2, bias="yes"), TypeError, "bias must be a bool"),
    (lambda: MultiHeadAttention(8, 2)(torch.zeros(1, 3, 8, dtype=torch.long)), TypeError,
     "x must be a floating-point"),
    (lambda: MultiHeadAttention(8, 2)(torch.randn(1, 3, 8), context=torch.randn(2, 3, 8)),
     ValueError, "context must be"),
    (lambda: KVCache().append(torch.randn(1, 2, 3, 4), torch.randn(1, 2, 4, 4)), ValueError,
     "k and v must match"),
])
def test_bad_input_is_refused_by_name(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_cache_refuses_a_different_shape():
    cache = KVCache()
    cache.append(torch.randn(1, 2, 3, 4), torch.randn(1, 2, 3, 4))
    with pytest.raises(ValueError, match="does not continue"):
        cache.append(torch.randn(1, 3, 1, 4), torch.randn(1, 3, 1, 4))


def test_nan_in_gives_nan_out_and_empty_queries_are_fine():
    q, k, v = _qkv()
    k[0, 1, 2] = float("nan")
    out, _ = scaled_dot_product_attention(q, k, v)
    assert torch.isnan(out[0]).all() and not torch.isnan(out[1]).any()
    out, w = scaled_dot_product_attention(*_qkv(n_q=0))
    assert out.shape == (2, 0, 8) and w.shape == (2, 0, 4)
    assert causal_mask(0).shape == (0, 0)
