"""Every exercise: its solution passes, a stub says "not implemented yet", and at least two
plausible wrong answers fail with a message that says what is wrong. Solutions are held to
the course's own implementations where the course has one."""

import math

import pytest
import torch
import torch.nn.functional as F

from course_lib import attention, flash, memory, numerics, quant
from course_lib.exercises import Case, call_repr, check, get, list_exercises, solution
from course_lib.models import Block, GPTConfig

IDS = list_exercises()


def _stub(*args, **kwargs):
    raise NotImplementedError("your code here")


# ---------------------------------------------------------------- plausible wrong answers
def _softmax_no_max(x):
    e = torch.exp(x)
    return e / e.sum(-1, keepdim=True)


def _softmax_dim0(x):
    m = x.amax(0, keepdim=True)
    e = torch.exp(x - m)
    return e / e.sum(0, keepdim=True)


def _causal_strict(n):
    return torch.ones(n, n, dtype=torch.bool).tril(-1)


def _causal_upper(n):
    return torch.ones(n, n, dtype=torch.bool).triu()


def _top_p_excl(probs, p):  # drops the token that crosses p (off by one)
    order = torch.argsort(probs, -1, descending=True)
    sp = torch.gather(probs, -1, order)
    keep_sorted = sp.cumsum(-1) < p
    keep_sorted[..., 0] = True
    keep = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)
    kept = torch.where(keep, probs, torch.zeros_like(probs))
    return kept / kept.sum(-1, keepdim=True)


def _top_p_no_renorm(probs, p):
    ref = solution("ch1.top_p")(probs, p)
    return torch.where(ref > 0, probs, torch.zeros_like(probs))


def _kv_no_two(batch, seq, n_layers, n_kv_heads, head_dim, bytes_per_value=2):
    return batch * seq * n_layers * n_kv_heads * head_dim * bytes_per_value


def _kv_no_bytes(batch, seq, n_layers, n_kv_heads, head_dim, bytes_per_value=2):
    return 2 * batch * seq * n_layers * n_kv_heads * head_dim


def _absmax_per_tensor(x, bits=8):
    qmax = 2 ** (bits - 1) - 1
    s = x.abs().max() / qmax
    return torch.round(x / s).clamp(-qmax, qmax).to(torch.int8), s.expand(x.shape[0], 1)


def _absmax_128(x, bits=8):
    qmax = 2 ** (bits - 1)
    s = x.abs().amax(1, keepdim=True) / qmax
    return torch.round(x / s).clamp(-qmax, qmax - 1).to(torch.int8), s


def _nf4_by_max(block):  # divides by max, not max |x|
    levels = torch.tensor(quant.NF4_LEVELS)
    norm = block / block.max()
    return (norm[:, None] - levels[None]).abs().argmin(1).to(torch.uint8)


def _nf4_no_scale(block):
    levels = torch.tensor(quant.NF4_LEVELS)
    return (block[:, None] - levels[None]).abs().argmin(1).to(torch.uint8)


def _online_no_rescale(x, tile):
    m, s = torch.tensor(float("-inf")), torch.tensor(0.0)
    for i in range(0, x.numel(), tile):
        c = x[i:i + tile]
        m = torch.maximum(m, c.max())
        s = s + torch.exp(c - m).sum()
    return torch.exp(x - m) / s


def _online_first_max(x, tile):
    m = x[:tile].max()
    return torch.exp(x - m) / torch.exp(x - m).sum() * 1.0 if tile >= x.numel() else \
        torch.exp(x - m) / torch.exp(x[:tile] - m).sum()


def _repeat_tiled(x, n_rep):
    return x.repeat(1, n_rep, 1, 1)


def _repeat_dim2(x, n_rep):
    return x.repeat_interleave(n_rep, dim=2)


def _lora_no_scale(x, weight, bias, lora_a, lora_b, alpha):
    return F.linear(x, weight, bias) + (x @ lora_a.T) @ lora_b.T


def _lora_alpha(x, weight, bias, lora_a, lora_b, alpha):
    return F.linear(x, weight, bias) + alpha * (x @ lora_a.T) @ lora_b.T


def _dpo_swapped(pc, pr, rc, rr, beta=0.1):
    return -F.logsigmoid(beta * ((pr - rr) - (pc - rc))).mean()


def _dpo_no_beta(pc, pr, rc, rr, beta=0.1):
    return -F.logsigmoid((pc - rc) - (pr - rr)).mean()


def _prune_global(weight, sparsity):
    k = int(sparsity * weight.numel())
    if k == 0:
        return weight.clone()
    thr = weight.abs().flatten().kthvalue(k).values
    return torch.where(weight.abs() <= thr, torch.zeros_like(weight), weight)


def _prune_round_up(weight, sparsity):
    k = math.ceil(sparsity * weight.shape[1] + 1e-9)
    out = weight.clone()
    if k:
        out.scatter_(1, weight.abs().argsort(1)[:, :k], 0.0)
    return out


def _mask_smallest(weight):
    g = weight.abs().reshape(weight.shape[0], -1, 4)
    idx = (-g).topk(2, -1).indices
    return torch.zeros_like(g, dtype=torch.bool).scatter(-1, idx, True).reshape(weight.shape)


def _mask_signed(weight):
    g = weight.reshape(weight.shape[0], -1, 4)
    idx = g.topk(2, -1).indices
    return torch.zeros_like(g, dtype=torch.bool).scatter(-1, idx, True).reshape(weight.shape)


def _bm25_no_length(docs, query, k1=1.5, b=0.75):
    return solution("ch7.bm25")(docs, query, k1, 0.0)


def _bm25_lucene_idf(docs, query, k1=1.5, b=0.75):
    n = len(docs)
    avgdl = sum(map(len, docs)) / n
    out = []
    for d in docs:
        s = 0.0
        for t in query:
            df = sum(t in o for o in docs)
            idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
            tf = d.count(t)
            s += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len(d) / avgdl))
        out.append(s)
    return out


def _rrf_rank0(rankings, k=60):
    score = {}
    for r in rankings:
        for i, doc in enumerate(r):
            score[doc] = score.get(doc, 0.0) + 1.0 / (k + i)
    return sorted(score, key=lambda d: -score[d])


def _rrf_first_only(rankings, k=60):
    return list(dict.fromkeys(x for r in rankings for x in r))


def _recall_over_k(ranked, relevant, k):
    return len(set(relevant) & set(ranked[:k])) / k


def _recall_off_by_one(ranked, relevant, k):
    return len(set(relevant) & set(ranked[:k - 1])) / len(set(relevant))


WRONG = {
    "ch1.softmax": [_softmax_no_max, _softmax_dim0],
    "ch1.causal_mask": [_causal_strict, _causal_upper],
    "ch1.top_p": [_top_p_excl, _top_p_no_renorm],
    "ch1.block_params": [4 * 128 * 128 + 2 * 128 * 512, 198_272 + 4 * 4 * 128],
    "ch1.nats": [math.log2(4), 0.25],
    "ch1.why_scale": ["a", "d"],
    "ch2.adam_bytes_13b": [13e9 * 4, 13e9 * 16],
    "ch2.kv_cache_bytes": [_kv_no_two, _kv_no_bytes],
    "ch2.kv_llama7b": [2 * 4096 * 32 * 32 * 128, 4096 * 32 * 32 * 128 * 2],
    "ch2.zero_stage": ["a", "b"],
    "ch2.ddp_memory": ["a", "c"],
    "ch3.absmax": [_absmax_per_tensor, _absmax_128],
    "ch3.pi_e5m2": [3.25, 3.140625],
    "ch3.fp16_max": [65535.0, 65536.0],
    "ch3.nf4_codes": [_nf4_by_max, _nf4_no_scale],
    "ch3.bf16": ["a", "d"],
    "ch4.online_softmax": [_online_no_rescale, _online_first_max],
    "ch4.attention_flops": [2 * 1024 * 1024 * 64, 4 * 1024 * 64],
    "ch4.repeat_kv": [_repeat_tiled, _repeat_dim2],
    "ch4.gqa_saving": [8.0, 32.0],
    "ch4.speed": ["a", "c"],
    "ch5.lora_params": [512 * 64, 4 * 512 * 64],
    "ch5.lora_forward": [_lora_no_scale, _lora_alpha],
    "ch5.dpo_loss": [_dpo_swapped, _dpo_no_beta],
    "ch5.b_zero": ["a", "c"],
    "ch6.magnitude_prune": [_prune_global, _prune_round_up],
    "ch6.mask_2_4": [_mask_smallest, _mask_signed],
    "ch6.spec_tokens": [4.0, 0.8 * 4],
    "ch6.t_squared": ["a", "d"],
    "ch7.bm25": [_bm25_no_length, _bm25_lucene_idf],
    "ch7.rrf": [_rrf_rank0, _rrf_first_only],
    "ch7.recall_at_k": [_recall_over_k, _recall_off_by_one],
    "ch7.no_eval": ["a", "c"],
}


def test_every_chapter_has_four_to_six_exercises():
    for chapter in range(1, 8):
        assert 4 <= len(list_exercises(chapter)) <= 6, chapter
    assert set(WRONG) == set(IDS)


@pytest.mark.parametrize("exercise_id", IDS)
def test_solution_passes(exercise_id, capsys):
    assert check(exercise_id, solution(exercise_id)) is True
    assert "✓" in capsys.readouterr().out


@pytest.mark.parametrize("exercise_id", IDS)
def test_stub_says_not_implemented(exercise_id, capsys):
    stub = _stub if get(exercise_id).kind == "function" else None
    assert check(exercise_id, stub) is False
    out = capsys.readouterr().out
    assert "not implemented yet" in out or "not answered yet" in out
    assert "Traceback" not in out


@pytest.mark.parametrize("exercise_id", IDS)
def test_wrong_answers_fail_with_a_useful_message(exercise_id, capsys):
    ex = get(exercise_id)
    assert len(WRONG[exercise_id]) >= 2
    for wrong in WRONG[exercise_id]:
        assert check(exercise_id, wrong) is False, wrong
        out = capsys.readouterr().out
        assert out.startswith("✗") and "Traceback" not in out
        if ex.kind == "function":
            assert "Hint:" in out or "bad input" in out
            assert "(" in out  # the failing call, ready to paste


def test_a_crashing_answer_is_reported_not_raised(capsys):
    def crash(x):
        return x.no_such_method()
    assert check("ch1.softmax", crash) is False
    assert "AttributeError" in capsys.readouterr().out


def test_failing_case_is_a_call_that_reruns():
    case = Case((torch.tensor([[1.0, -2.0]]), 8), {"k": float("inf")})
    text = call_repr("f", case)
    assert text == "f(torch.tensor([[1.0, -2.0]]), 8, k=float('inf'))"


def test_check_rejects_unknown_ids_and_never_runs_text(capsys):
    with pytest.raises(ValueError, match="unknown exercise"):
        check("ch9.nothing", 1)
    # a string answer to a function exercise is reported, not executed
    assert check("ch1.softmax", "__import__('os').system('false')") is False
    assert "expected a function" in capsys.readouterr().out


# ------------------------------------------------- solutions held to the course's own code
def test_solutions_match_course_lib():
    x = torch.randn(4, 9)
    assert torch.allclose(solution("ch1.softmax")(x), attention.softmax(x), atol=1e-6)
    for n in (1, 3, 7):
        assert torch.equal(solution("ch1.causal_mask")(n), attention.causal_mask(n))
    cfg = GPTConfig(vocab_size=512, block_size=64, n_layer=1, n_head=4, d_model=128)
    block_params = sum(p.numel() for p in Block(cfg).parameters())
    assert solution("ch1.block_params") == block_params
    assert solution("ch2.kv_llama7b") == memory.kv_cache_bytes(1, 4096, 32, 32, 128, "fp16")
    assert solution("ch2.kv_cache_bytes")(2, 10, 3, 4, 8, 2) == memory.kv_cache_bytes(
        2, 10, 3, 4, 8, "fp16")
    w = torch.randn(5, 32)
    q, s = solution("ch3.absmax")(w)
    q_ref, s_ref = quant.absmax_quantize(w, bits=8, dim=1)
    assert torch.equal(q, q_ref.reshape(q.shape))
    assert torch.allclose(s.flatten(), s_ref.flatten())
    assert solution("ch3.pi_e5m2") == numerics.round_to(math.pi, "fp8_e5m2")
    assert solution("ch3.fp16_max") == torch.finfo(torch.float16).max
    block = torch.randn(64)
    codes_ref, _ = quant.nf4_quantize(block, 64)
    assert torch.equal(solution("ch3.nf4_codes")(block), codes_ref)
    v = torch.randn(37)
    assert torch.allclose(solution("ch4.online_softmax")(v, 5), flash.online_softmax(v, 5)[0],
                          atol=1e-6)
    kv = torch.randn(2, 2, 3, 4)
    assert torch.equal(solution("ch4.repeat_kv")(kv, 3), attention.repeat_kv(kv, 3))
    assert solution("ch4.attention_flops") == flash.attention_flops(1024, 1024, 64)


def test_bm25_solution_matches_rank_bm25():
    from rank_bm25 import BM25Okapi

    from course_lib.exercises.ch7 import _DOCS

    bm25 = BM25Okapi(_DOCS)
    for query in (["cat"], ["dog", "garden"], ["roses", "roses"], ["coffee"]):
        ours = solution("ch7.bm25")(_DOCS, query)
        theirs = bm25.get_scores(query).tolist()
        assert ours == pytest.approx(theirs, rel=1e-12, abs=1e-12), query


def test_chapter_7_solutions_match_course_lib_rag():
    from course_lib import rag

    rankings = [["a", "b", "c", "d"], ["d", "c"], ["c", "x"]]
    for k in (1, 60):
        assert solution("ch7.rrf")(rankings, k) == rag.reciprocal_rank_fusion(rankings, k=k)
    ranked, relevant = ["a", "b", "c", "d"], ["a", "d", "z"]
    for k in (1, 2, 3, 4, 10):
        assert solution("ch7.recall_at_k")(ranked, relevant, k) == pytest.approx(
            rag.recall_at_k(ranked, relevant, k))


def test_chapter_5_and_6_solutions_match_course_lib():
    from course_lib import align, peft, prune, speculative

    base = torch.nn.Linear(8, 4)
    layer = peft.LoRALinear(base, r=2, alpha=16.0)
    with torch.no_grad():
        layer.lora_B.normal_()
    x = torch.randn(3, 8)
    ours = solution("ch5.lora_forward")(x, base.weight, base.bias, layer.lora_A, layer.lora_B,
                                        16.0)
    assert torch.allclose(ours, layer(x), atol=1e-6)
    assert solution("ch5.lora_params") == peft.lora_param_count(512, 64, 4)
    logps = [torch.randn(5) * 5 for _ in range(4)]
    assert torch.allclose(solution("ch5.dpo_loss")(*logps, beta=0.3),
                          align.dpo_loss(*logps, beta=0.3))
    w = torch.randn(6, 20)
    for sparsity in (0.0, 0.3, 0.55, 0.9):
        assert torch.equal(solution("ch6.magnitude_prune")(w, sparsity),
                           prune.magnitude_prune(w, sparsity))
    w = torch.randn(3, 12)
    assert torch.equal(solution("ch6.mask_2_4")(w),
                       prune.magnitude_prune(w, 0.5, n_m=(2, 4)) != 0)
    assert solution("ch6.spec_tokens") == pytest.approx(
        speculative.expected_tokens_per_step(0.8, 4))
