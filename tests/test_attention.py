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
    (12, 0, None, "must divide d_model"),
    (12, 4, 0, "must divide n_heads"),
])
def test_mha_bad_config(d_model, n_heads, n_kv, match):
    with pytest.raises(ValueError, match=match):
        MultiHeadAttention(d_model, n_heads, n_kv)


def test_mha_bad_input_shape():
    with pytest.raises(ValueError, match=r"\(B, T, 8\)"):
        MultiHeadAttention(8, 2)(torch.randn(3, 7))
