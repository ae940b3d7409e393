"""course_lib.flash held against torch's scaled_dot_product_attention and the core attention."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.overrides import TorchFunctionMode

from course_lib import flash

ATOL = 1e-5


def _qkv(*batch, n_q, n_k=None, d=16, d_v=None, kv_heads=None, seed=0, dtype=torch.float32):
    n_k = n_q if n_k is None else n_k
    gen = torch.Generator().manual_seed(seed)
    kv_batch = batch if kv_heads is None else (*batch[:-1], kv_heads)
    q = torch.randn(*batch, n_q, d, generator=gen, dtype=dtype)
    k = torch.randn(*kv_batch, n_k, d, generator=gen, dtype=dtype)
    v = torch.randn(*kv_batch, n_k, d_v or d, generator=gen, dtype=dtype)
    return q, k, v


def _reference(q, k, v, causal):
    """Standard attention that materialises the n_q x n_k matrix (queries = last n_q)."""
    n_q, n_k = q.shape[-2], k.shape[-2]
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    if causal:
        keep = torch.ones(n_q, n_k, dtype=torch.bool).tril(n_k - n_q)
        scores = scores.masked_fill(~keep, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


def _torch_sdpa(q, k, v, causal, **kw):
    n_q, n_k = q.shape[-2], k.shape[-2]
    if causal and n_q != n_k:  # torch's is_causal aligns top-left; we align bottom-right
        keep = torch.ones(n_q, n_k, dtype=torch.bool).tril(n_k - n_q)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=keep, **kw)
    return F.scaled_dot_product_attention(q, k, v, is_causal=causal, **kw)


# ------------------------------------------------------------------ online softmax
def test_online_softmax_equals_softmax_and_tracks_running_max_and_sum():
    x = torch.tensor([[1.0, 3.0, -2.0, 7.0, 0.5, 7.5, 2.0]])
    probs, history = flash.online_softmax(x, tile_size=3)
    torch.testing.assert_close(probs, torch.softmax(x, -1), atol=1e-7, rtol=0)
    assert len(history) == 3
    m_final, l_final = history[-1]
    assert m_final.item() == 7.5
    assert math.isclose(l_final.item(), torch.exp(x - 7.5).sum().item(), rel_tol=1e-6)
    # After the first block the running max is that block's max, 3.0.
    assert history[0][0].item() == 3.0


def test_online_softmax_survives_large_logits():
    x = torch.tensor([1000.0, 1001.0, 999.0, 1002.0])
    probs, _ = flash.online_softmax(x, 1)
    assert torch.isfinite(probs).all()
    torch.testing.assert_close(probs, torch.softmax(x, -1))


# A softmax row whose first tile is all -inf (left padding, a masked prefix) must not poison
# the running sum: the rescale exp(m_old - m_new) is exp(-inf - (-inf)) = NaN unless guarded.
NEG = float("-inf")
MASKED_PREFIX_ROWS = torch.tensor(
    [
        [NEG, NEG, NEG, 1.0, 3.0, -2.0, 0.5],  # three padding positions on the left
        [NEG, NEG, NEG, NEG, NEG, NEG, 4.0],  # everything but the last key is padding
        [NEG, 2.0, NEG, NEG, NEG, NEG, 1.0],  # -inf tiles after a finite entry
        [0.5, 1.0, -1.0, 2.0, 0.0, 3.0, -3.0],  # no mask at all, for contrast
    ]
)


@pytest.mark.parametrize("tile_size", [1, 2, 3, 4, 7, 8])
def test_online_softmax_with_a_masked_first_tile_equals_torch_softmax(tile_size):
    probs, history = flash.online_softmax(MASKED_PREFIX_ROWS, tile_size=tile_size)
    expected = torch.softmax(MASKED_PREFIX_ROWS, -1)
    torch.testing.assert_close(probs, expected, atol=1e-6, rtol=0)
    # A tile that has seen only -inf leaves the running state at (m, l) = (-inf, 0).
    m_first, l_first = history[0]
    if tile_size <= 3:
        assert m_first[0].item() == NEG and l_first[0].item() == 0.0


def test_online_softmax_masked_prefix_keeps_nan_and_fully_masked_rows_as_torch():
    x = torch.tensor(
        [
            [NEG, NEG, float("nan"), 1.0, 2.0],  # a genuine NaN after the padding: NaN row
            [NEG, NEG, NEG, NEG, NEG],  # fully masked: torch.softmax gives NaN
            [NEG, NEG, 1.0, 2.0, 3.0],
        ]
    )
    probs, _ = flash.online_softmax(x, tile_size=2)
    expected = torch.softmax(x, -1)
    assert probs[:2].isnan().all() and expected[:2].isnan().all()
    torch.testing.assert_close(probs, expected, atol=1e-6, rtol=0, equal_nan=True)


# ------------------------------------------------------------------ forward exactness
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize(
    "n_q,n_k,block_q,block_k",
    [
        (64, 64, 16, 16),  # divisible
        (100, 100, 32, 24),  # not divisible by either block
        (1, 1, 64, 64),  # length 1
        (1, 77, 8, 16),  # one query against a cache of 77 keys (decoding)
        (37, 130, 16, 32),  # fewer queries than keys: queries are the last 37 positions
        (50, 50, 128, 128),  # blocks larger than the sequence
        (33, 33, 1, 1),  # 1 x 1 tiles
    ],
)
def test_flash_matches_torch_sdpa_and_reference(causal, n_q, n_k, block_q, block_k):
    q, k, v = _qkv(2, 3, n_q=n_q, n_k=n_k, d=16, d_v=8)
    out = flash.flash_attention(q, k, v, causal=causal, block_q=block_q, block_k=block_k)
    assert out.shape == (2, 3, n_q, 8)
    torch.testing.assert_close(out, _torch_sdpa(q, k, v, causal), atol=ATOL, rtol=0)
    torch.testing.assert_close(out, _reference(q, k, v, causal), atol=ATOL, rtol=0)


def test_flash_matches_core_attention_with_core_causal_mask():
    attention = pytest.importorskip("course_lib.attention")
    q, k, v = _qkv(2, 4, n_q=45, n_k=70, d=32)
    expected, _ = attention.scaled_dot_product_attention(
        q, k, v, mask=attention.causal_mask(45, 70)
    )
    out = flash.flash_attention(q, k, v, causal=True, block_q=16, block_k=16)
    torch.testing.assert_close(out, expected, atol=ATOL, rtol=0)


def test_unbatched_2d_input_and_custom_scale():
    q, k, v = _qkv(n_q=20, n_k=30, d=8)
    out = flash.flash_attention(q, k, v, block_q=7, block_k=9, scale=0.3)
    expected = F.scaled_dot_product_attention(q, k, v, scale=0.3)
    torch.testing.assert_close(out, expected, atol=ATOL, rtol=0)


def test_queries_that_see_no_key_get_zeros():
    q, k, v = _qkv(1, n_q=10, n_k=4, d=8)  # causal, 10 queries ending at position 3
    out = flash.flash_attention(q, k, v, causal=True, block_q=4, block_k=4)
    assert torch.isfinite(out).all()
    assert (out[:, :6] == 0).all()  # queries at positions -6..-1 see nothing
    torch.testing.assert_close(out[:, 6:], _reference(q[:, 6:], k, v, True), atol=ATOL, rtol=0)


@pytest.mark.parametrize("block_q,block_k", [(4, 4), (4, 1), (5, 2), (16, 16)])
def test_causal_rows_that_see_no_key_yet_forward_and_backward_match_torch(block_q, block_k):
    # 10 queries over 4 keys, causal: the first 6 queries see nothing, so a query tile that
    # straddles query 6 mixes fully masked rows with rows that see only the first few keys.
    q, k, v = _qkv(2, 2, n_q=10, n_k=4, d=8)
    d_out = torch.randn(2, 2, 10, 8, generator=torch.Generator().manual_seed(1))
    outs, grads = [], []
    for fn in (
        lambda a, b, c: flash.flash_attention(
            a, b, c, causal=True, block_q=block_q, block_k=block_k
        ),
        lambda a, b, c: _torch_sdpa(a, b, c, True),  # torch also gives zeros where none seen
    ):
        leaves = [t.clone().requires_grad_() for t in (q, k, v)]
        out = fn(*leaves)
        out.backward(d_out)
        outs.append(out)
        grads.append([t.grad for t in leaves])
    assert (outs[0][..., :6, :] == 0).all()
    torch.testing.assert_close(outs[0], outs[1], atol=1e-6, rtol=0)
    for ours, expected in zip(*grads, strict=True):
        torch.testing.assert_close(ours, expected, atol=1e-6, rtol=0)


def test_first_key_block_scored_minus_inf_matches_torch_forward_and_backward():
    # flash_attention takes no mask argument, so a query whose first block_k keys are all
    # masked comes from keys that score -inf: k = -inf against a strictly positive q.
    gen = torch.Generator().manual_seed(0)
    q = torch.rand(2, 6, 4, generator=gen) + 0.1
    k = torch.randn(2, 12, 4, generator=gen)
    v = torch.randn(2, 12, 3, generator=gen)
    k[:, :4] = float("-inf")  # the whole first key block of 4
    results = []
    for fn in (
        lambda a, b, c: flash.flash_attention(a, b, c, block_q=2, block_k=4),
        lambda a, b, c: _math_sdpa(a, b, c),
    ):
        leaves = [t.clone().requires_grad_() for t in (q, k, v)]
        out = fn(*leaves)
        out.sum().backward()
        results.append([out, *(t.grad for t in leaves)])
    (out, dq, dk, dv), (expected, dq_ref, dk_ref, dv_ref) = results
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(dk, dk_ref, atol=1e-6, rtol=0)
    torch.testing.assert_close(dv, dv_ref, atol=1e-6, rtol=0)
    # dq = dS @ k meets 0 * -inf in the masked keys, in torch's autograd as in ours.
    torch.testing.assert_close(dq, dq_ref, atol=1e-6, rtol=0, equal_nan=True)


def test_bf16_input_accumulates_in_fp32():
    q, k, v = _qkv(2, 2, n_q=70, d=32, dtype=torch.bfloat16)
    out = flash.flash_attention(q, k, v, causal=True, block_q=16, block_k=16)
    assert out.dtype == torch.bfloat16
    expected = _reference(q.float(), k.float(), v.float(), True)
    torch.testing.assert_close(out.float(), expected, atol=2e-2, rtol=0)


# ------------------------------------------------------------------ backward
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("n_q,n_k", [(45, 45), (20, 53), (1, 9)])
def test_gradients_match_autograd_through_standard_attention(causal, n_q, n_k):
    q, k, v = _qkv(2, 2, n_q=n_q, n_k=n_k, d=16)
    d_out = torch.randn(2, 2, n_q, 16, generator=torch.Generator().manual_seed(1))
    grads = []
    for fn in (
        lambda a, b, c: flash.flash_attention(a, b, c, causal=causal, block_q=16, block_k=8),
        lambda a, b, c: _reference(a, b, c, causal),
    ):
        leaves = [t.clone().requires_grad_() for t in (q, k, v)]
        fn(*leaves).backward(d_out)
        grads.append([t.grad for t in leaves])
    for ours, expected in zip(*grads, strict=True):
        torch.testing.assert_close(ours, expected, atol=ATOL, rtol=0)


def test_gradcheck_in_float64_with_gqa_and_causal():
    q, k, v = _qkv(1, 4, n_q=7, n_k=9, d=4, kv_heads=2, dtype=torch.float64)
    inputs = tuple(t.requires_grad_() for t in (q, k, v))
    assert torch.autograd.gradcheck(
        lambda a, b, c: flash.flash_attention(a, b, c, causal=True, block_q=3, block_k=4),
        inputs,
    )


def test_backward_saves_no_quadratic_tensor():
    q, k, v = (t.requires_grad_() for t in _qkv(1, 1, n_q=256, d=8))
    out = flash.flash_attention(q, k, v, block_q=32, block_k=32)
    saved = out.grad_fn.saved_tensors
    largest = max(t.numel() for t in saved)
    assert largest <= 256 * 8  # q, k, v, out and the (256,) logsumexp: O(n d), never n^2


# ------------------------------------------------------------------ GQA / MQA
@pytest.mark.parametrize("kv_heads", [1, 2, 4])  # MQA, GQA, MHA with 4 query heads... x2
def test_gqa_and_mqa_match_torch_enable_gqa(kv_heads):
    q, k, v = _qkv(2, 8, n_q=40, d=16, kv_heads=kv_heads)
    leaves = [t.clone().requires_grad_() for t in (q, k, v)]
    out = flash.flash_attention(*leaves, causal=True, block_q=16, block_k=16)
    ref_leaves = [t.clone().requires_grad_() for t in (q, k, v)]
    expected = F.scaled_dot_product_attention(*ref_leaves, is_causal=True, enable_gqa=True)
    torch.testing.assert_close(out, expected, atol=ATOL, rtol=0)
    out.sum().backward()
    expected.sum().backward()
    for ours, theirs in zip(leaves, ref_leaves, strict=True):
        assert ours.grad.shape == theirs.grad.shape
        torch.testing.assert_close(ours.grad, theirs.grad, atol=ATOL, rtol=0)


@pytest.mark.parametrize("n_kv_heads", [1, 2, 4])
def test_core_multihead_attention_gqa_matches_torch_sdpa(n_kv_heads):
    attention = pytest.importorskip("course_lib.attention")
    torch.manual_seed(0)
    mha = attention.MultiHeadAttention(32, 4, n_kv_heads=n_kv_heads).eval()
    x = torch.randn(2, 11, 32)
    b, t, _ = x.shape
    q = mha.q_proj(x).view(b, t, 4, 8).transpose(1, 2)  # (B, nh, T, hd)
    k = mha.k_proj(x).view(b, t, n_kv_heads, 8).transpose(1, 2)  # (B, nkv, T, hd)
    v = mha.v_proj(x).view(b, t, n_kv_heads, 8).transpose(1, 2)
    heads = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
    expected = mha.out_proj(heads.transpose(1, 2).reshape(b, t, 32))
    with torch.no_grad():
        ours = mha(x, mask=attention.causal_mask(t))
        torch.testing.assert_close(ours, expected, atol=ATOL, rtol=0)
        flash_heads = flash.flash_attention(q, k, v, causal=True, block_q=4, block_k=4)
        torch.testing.assert_close(flash_heads, heads, atol=ATOL, rtol=0)


# ------------------------------------------------------------------ KV cache in the model
def test_cached_decoding_equals_uncached_token_for_token():
    models = pytest.importorskip("course_lib.models")
    torch.manual_seed(0)
    cfg = models.GPTConfig(vocab_size=50, block_size=64, n_layer=2, n_head=4, d_model=32,
                           n_kv_head=2)
    model = models.GPT(cfg).eval()
    prompt = torch.randint(0, 50, (2, 5), generator=torch.Generator().manual_seed(0))
    outs = []
    for use_cache in (True, False):
        gen = torch.Generator().manual_seed(3)
        with torch.no_grad():
            outs.append(model.generate(prompt, 30, temperature=1.0, use_cache=use_cache,
                                       generator=gen))
    assert outs[0].shape == (2, 35)
    assert torch.equal(outs[0], outs[1])


# ------------------------------------------------------------------ NaN in, NaN out
def _math_sdpa(q, k, v, causal=False):
    """torch's reference backend: it materialises the scores, so every NaN reaches the output."""
    with sdpa_kernel(SDPBackend.MATH):
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal)


@pytest.mark.parametrize("where", ["q", "k", "v"])
def test_nan_input_gives_nan_output_like_torch_sdpa(where):
    q, k, v = _qkv(2, 2, n_q=40, d=8)
    tensors = {"q": q, "k": k, "v": v}
    tensors[where][1, 0, 13, 3] = float("nan")
    out = flash.flash_attention(q, k, v, block_q=16, block_k=8)
    expected = _math_sdpa(q, k, v)
    assert torch.equal(out.isnan(), expected.isnan())  # NaN exactly where torch has NaN
    assert out.isnan().any()
    torch.testing.assert_close(out, expected, atol=ATOL, rtol=0, equal_nan=True)


def test_one_nan_key_under_a_causal_mask_reaches_exactly_the_queries_that_see_it():
    q, k, v = _qkv(1, 1, n_q=40, d=8)
    clean = _reference(q, k, v, True)
    k[0, 0, 21, 0] = float("nan")  # seen by queries 21..39 only
    out = flash.flash_attention(q, k, v, causal=True, block_q=16, block_k=8)
    assert out[0, 0, 21:].isnan().all()
    torch.testing.assert_close(out[0, 0, :21], clean[0, 0, :21], atol=ATOL, rtol=0)
    # torch's fused CPU kernel (the default SDPA backend here) agrees row for row.
    sdpa = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    assert torch.equal(out.isnan(), sdpa.isnan())


def test_nan_value_row_makes_every_query_that_sees_it_nan():
    q, k, v = _qkv(1, 1, n_q=40, d=8)
    v[0, 0, 21, :] = float("nan")
    out = flash.flash_attention(q, k, v, causal=True, block_q=16, block_k=8)
    assert out[0, 0, 21:].isnan().all()
    assert torch.isfinite(out[0, 0, :16]).all()  # a whole query tile before key 21


def test_nan_gradients_stay_nan():
    q, k, v = (t.requires_grad_() for t in _qkv(1, n_q=12, d=4))
    with torch.no_grad():
        k[0, 5, 1] = float("nan")
    flash.flash_attention(q, k, v, block_q=4, block_k=4).sum().backward()
    assert q.grad.isnan().all() and k.grad.isnan().any()


def test_online_softmax_propagates_nan():
    x = torch.tensor([[1.0, float("nan"), 2.0, 3.0], [0.0, 1.0, 2.0, 3.0]])
    probs, _ = flash.online_softmax(x, tile_size=2)
    assert probs[0].isnan().all()
    torch.testing.assert_close(probs[1], torch.softmax(x[1], -1))


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("bad,error", [(0, ValueError), (-4, ValueError), (1.5, TypeError),
                                       (64.0, TypeError), ("64", TypeError), (True, TypeError),
                                       (None, TypeError)])
def test_bad_block_sizes_raise(bad, error):
    q, k, v = _qkv(1, n_q=8, d=4)
    with pytest.raises(error, match="block_q"):
        flash.flash_attention(q, k, v, block_q=bad)
    with pytest.raises(error, match="block_k"):
        flash.flash_attention(q, k, v, block_k=bad)
    with pytest.raises(error, match="tile_size"):
        flash.online_softmax(q, bad)


@pytest.mark.parametrize(
    "shapes,match",
    [
        (((8,), (8, 4), (8, 4)), "rank"),
        (((8, 4), (8, 5), (8, 5)), "head dims"),
        (((2, 8, 4), (3, 8, 4), (3, 8, 4)), "batch dims"),
        (((8, 4), (9, 4), (8, 4)), "k and v"),
        (((1, 6, 8, 4), (1, 4, 8, 4), (1, 4, 8, 4)), "multiple"),
        (((2, 8, 4), (8, 4), (8, 4)), "same rank"),
        (((8, 4), (0, 4), (0, 4)), "k must hold at least one"),
        (((0, 4), (8, 4), (8, 4)), "q must hold at least one"),
        (((8, 0), (8, 0), (8, 4)), "q must have a head dim"),
        (((8, 4), (8, 4), (8, 0)), "v must have a head dim"),
    ],
)
def test_bad_shapes_raise(shapes, match):
    q, k, v = (torch.zeros(s) for s in shapes)
    with pytest.raises(ValueError, match=match):
        flash.flash_attention(q, k, v)


def test_bad_types_and_dtypes_raise():
    q = torch.zeros(4, 4)
    with pytest.raises(TypeError, match="q must be a torch.Tensor"):
        flash.flash_attention([[0.0]], q, q)
    with pytest.raises(TypeError, match="k must be a floating-point"):
        flash.flash_attention(q, q.long(), q)
    with pytest.raises(TypeError, match="share a dtype"):
        flash.flash_attention(q, q.double(), q)
    with pytest.raises(TypeError, match="causal"):
        flash.flash_attention(q, q, q, causal="yes")
    with pytest.raises(TypeError, match="scale"):
        flash.flash_attention(q, q, q, scale="0.5")
    with pytest.raises(ValueError, match="scale"):
        flash.flash_attention(q, q, q, scale=float("nan"))
    with pytest.raises(TypeError, match="x must be a floating-point"):
        flash.online_softmax(torch.arange(4), 2)
    with pytest.raises(ValueError, match="non-empty"):
        flash.online_softmax(torch.zeros(3, 0), 2)


@pytest.mark.parametrize(
    "call,error,match",
    [
        (lambda: flash.block_sizes(0, 64), ValueError, "sram_bytes"),
        (lambda: flash.block_sizes(2.5e6, 64), TypeError, "sram_bytes"),
        (lambda: flash.block_sizes(4096, 0), ValueError, "d must"),
        (lambda: flash.block_sizes(4096, 64, bytes_per_el=True), TypeError, "bytes_per_el"),
        (lambda: flash.hbm_traffic(0, 64, 4096, "standard"), ValueError, "n must"),
        (lambda: flash.hbm_traffic(64, 64, -1, "standard"), ValueError, "sram_bytes"),
        (lambda: flash.hbm_traffic(64, 64, 4096, "sparse"), ValueError, "method"),
        (lambda: flash.hbm_traffic(64, 64, 4096, None), TypeError, "method"),
        (lambda: flash.hbm_traffic(64, 8, 4096, "flash2", blocks=(0, 4)), ValueError, "B_r"),
        (lambda: flash.hbm_traffic(64, 8, 4096, "flash2", blocks=64), TypeError, "blocks"),
        (lambda: flash.attention_flops(0, 8, 8), ValueError, "n_q"),
        (lambda: flash.attention_flops(8, 8.5, 8), TypeError, "n_k"),
        (lambda: flash.attention_flops(8, 8, 8, causal=None), TypeError, "causal"),
    ],
)
def test_io_model_rejects_bad_arguments(call, error, match):
    with pytest.raises(error, match=match):
        call()


# ------------------------------------------------------------------ IO model
def test_block_sizes_follow_the_papers_rule():
    # M = 100 KB of fp32 = 25,600 elements; d = 64: B_c = ceil(25600 / 256) = 100, B_r = 64.
    assert flash.block_sizes(100 * 1024, 64) == (64, 100)
    # Small SRAM: B_r = B_c = ceil(M / 4d) < d.
    assert flash.block_sizes(4096, 128) == (2, 2)
    assert flash.block_sizes(4096, 128, bytes_per_el=2) == (4, 4)
    with pytest.raises(ValueError, match="cannot hold"):
        flash.block_sizes(64, 128)


class _CountTraffic(TorchFunctionMode):
    """Counts the elements a loop moves between "HBM" and the chip while it runs.

    HBM is the tensors registered in ``hbm`` (the inputs, and buffers made with ``alloc``):
    every slice taken from one of them is a read, every store ``t[...] = x`` into any tensor
    is a write. All other work (on the slices that were read) is on chip.
    """

    def __init__(self, *hbm):
        super().__init__()
        self.hbm, self.reads, self.writes = list(hbm), 0, 0

    def alloc(self, *shape):
        buffer = torch.empty(*shape)
        self.hbm.append(buffer)
        return buffer

    def __torch_function__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        if func is torch.Tensor.__getitem__ and any(args[0] is t for t in self.hbm):
            self.reads += result.numel()
        elif func is torch.Tensor.__setitem__:
            self.writes += args[0][args[1]].numel()
        return result


def _standard_three_kernels(q, k, v, hbm):
    """Algorithm 0: each step reads its operands from HBM and writes its result back."""
    n, d = q.shape
    s = hbm.alloc(n, n)
    s[:] = q[:] @ k[:].T / math.sqrt(d)  # read Q, K; write S
    p = hbm.alloc(n, n)
    p[:] = torch.softmax(s[:], -1)  # read S; write P
    o = hbm.alloc(n, v.shape[-1])
    o[:] = p[:] @ v[:]  # read P, V; write O
    return o


def _algorithm1(q, k, v, block_r, block_c, hbm):
    """FlashAttention's Algorithm 1: K/V tiles outside, and O, l, m kept in HBM."""
    n, d = q.shape
    o, l, m = hbm.alloc(n, d), hbm.alloc(n), hbm.alloc(n)
    o[:], l[:], m[:] = 0.0, 0.0, -math.inf
    for j0 in range(0, n, block_c):
        k_j, v_j = k[j0 : j0 + block_c], v[j0 : j0 + block_c]
        for i0 in range(0, n, block_r):
            rows = slice(i0, i0 + block_r)
            q_i, o_i, l_i, m_i = q[rows], o[rows], l[rows], m[rows]
            s = q_i @ k_j.T / math.sqrt(d)
            m_t = s.amax(-1)
            p = torch.exp(s - m_t.unsqueeze(-1))
            m_new = torch.maximum(m_i, m_t)
            old, new = torch.exp(m_i - m_new), torch.exp(m_t - m_new)
            l_new = old * l_i + new * p.sum(-1)
            o[rows] = ((l_i * old).unsqueeze(-1) * o_i
                       + new.unsqueeze(-1) * (p @ v_j)) / l_new.unsqueeze(-1)
            l[rows], m[rows] = l_new, m_new
    return o


@pytest.mark.parametrize("n,d,sram", [(300, 16, 4096 * 4), (256, 8, 2048 * 4), (97, 4, 600)])
def test_hbm_traffic_counts_the_reads_and_writes_of_each_loop(n, d, sram):
    """Each IO model equals the element traffic of a loop that computes attention that way."""
    q, k, v = _qkv(n_q=n, d=d)
    expected = F.scaled_dot_product_attention(q, k, v)
    block_r, block_c = flash.block_sizes(sram, d)
    assert block_r != block_c or n <= block_r  # so that T_r and T_c cannot be confused
    loops = {
        "standard": lambda hbm: _standard_three_kernels(q, k, v, hbm),
        "flash": lambda hbm: _algorithm1(q, k, v, block_r, block_c, hbm),
        # the course's own forward, counted as it runs (query tiles outside)
        "flash2": lambda hbm: flash._forward(q, k, v, False, block_r, block_c,
                                             1 / math.sqrt(d))[0],
    }
    for method, loop in loops.items():
        with _CountTraffic(q, k, v) as hbm:
            out = loop(hbm)
        torch.testing.assert_close(out, expected, atol=ATOL, rtol=0)
        assert hbm.reads + hbm.writes == flash.hbm_traffic(n, d, sram, method), method


def test_hbm_traffic_scaling_and_blocks_override():
    n, d, sram = 4096, 64, 100 * 1024
    flash_reads = flash.hbm_traffic(n, d, sram, "flash")
    # Theta(n^2 d^2 / M) with the constant 12 from the loop structure
    assert 0.9 < flash_reads / (12 * n * n * d * d / (sram // 4)) < 1.2
    assert flash_reads < flash.hbm_traffic(n, d, sram, "standard")
    assert flash.hbm_traffic(n, d, 4 * sram, "flash") < flash_reads / 3
    assert 14 < flash.hbm_traffic(4 * n, d, sram, "flash") / flash_reads < 17
    # blocks= replaces the rule: the rule's own blocks give the same count
    rule = flash.block_sizes(sram, d)
    for method in ("flash", "flash2"):
        assert flash.hbm_traffic(n, d, sram, method, blocks=rule) == flash.hbm_traffic(
            n, d, sram, method)
    # bigger query tiles, fewer passes over K and V
    assert flash.hbm_traffic(n, d, sram, "flash2", blocks=(256, 512)) < flash.hbm_traffic(
        n, d, sram, "flash2", blocks=(64, 64))


def test_attention_flops():
    assert flash.attention_flops(10, 20, 8) == 4 * 10 * 20 * 8
    assert flash.attention_flops(10, 10, 8, causal=True) == 2 * 10 * 10 * 8


def test_tiled_memory_is_linear_standard_is_quadratic():
    from course_lib import measure

    q, k, v = _qkv(1, 1, n_q=512, d=16)
    _, std_peak = measure.measure_peak_memory(_reference, q, k, v, False)
    out, flash_peak = measure.measure_peak_memory(
        flash.flash_attention, q, k, v, block_q=64, block_k=64
    )
    assert out.shape == (1, 1, 512, 16)
    assert std_peak >= 2 * 512 * 512 * 4  # scores and probabilities coexist
    assert flash_peak < std_peak / 10


# ------------------------------------------------------------------ the tile-grid diagram
def test_tile_grid_draws_every_tile_and_rejects_bad_steps():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from course_lib import plots

    fig = plots.flash_tile_grid(12, 10, 4, 4, [(0, 0), (2, 1)], causal=True)
    ax = fig.axes[0]
    # 3 x 3 score tiles plus 8 strip rectangles (Q, O, K^T, V^T: whole strip + fast block)
    assert len(ax.patches) == 9 + 8
    plt.close(fig)
    with pytest.raises(ValueError, match="outside"):
        plots.flash_tile_grid(12, 12, 4, 4, [(3, 0)])
    with pytest.raises(ValueError, match="skips"):
        plots.flash_tile_grid(12, 12, 4, 4, [(0, 2)], causal=True)
    with pytest.raises(TypeError, match="block_q"):
        plots.flash_tile_grid(12, 12, 4.0, 4, [(0, 0)])
    with pytest.raises(ValueError, match="empty"):
        plots.flash_tile_grid(12, 12, 4, 4, [])
