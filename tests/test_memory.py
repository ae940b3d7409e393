"""course_lib.memory: the notes' numbers, the papers' formulas, exact counts and measurements."""

import subprocess
import sys

import pytest
import torch
from torch import nn

from course_lib import memory as M
from course_lib.attention import KVCache
from course_lib.models import GPT, GPTConfig

TINY = GPTConfig(vocab_size=512, block_size=128, n_layer=4, n_head=4, d_model=128)


# --- bytes per parameter and the course notes' table ------------------------------------

@pytest.mark.parametrize("dtype, nbytes", [("fp32", 4), ("fp16", 2), ("bf16", 2), ("fp8", 1),
                                           ("int8", 1), ("int4", 0.5)])
def test_bytes_per_param(dtype, nbytes):
    assert M.bytes_per_param(dtype) == nbytes


def test_bytes_per_param_matches_torch_element_size():
    for name, dt in [("fp32", torch.float32), ("fp16", torch.float16), ("bf16", torch.bfloat16),
                     ("fp8", torch.float8_e4m3fn), ("int8", torch.int8)]:
        assert M.bytes_per_param(name) == torch.empty(0, dtype=dt).element_size()


@pytest.mark.parametrize("dtype, load_gb, train_gb", [("fp32", 4, 24), ("fp16", 2, 12),
                                                      ("bf16", 2, 12), ("int8", 1, 6)])
def test_seed_notes_table_for_1b(dtype, load_gb, train_gb):
    assert M.model_memory(1e9, dtype) == load_gb * M.GB
    parts = M.training_memory(1e9, dtype, "adam", "seed")
    assert parts["total"] == train_gb * M.GB
    assert parts["total"] == sum(v for k, v in parts.items() if k != "total")


def test_seed_recipe_parts_at_fp32():
    parts = M.training_memory(1e9)
    assert parts == {"weights": 4e9, "gradients": 4e9, "optimizer": 8e9, "activations": 8e9,
                     "total": 24e9}
    assert M.training_memory(1e9, optimizer="sgd")["optimizer"] == 0


def test_mixed_recipe_is_zero_accounting():
    bf16 = M.training_memory(1e9, "bf16", "adam", "mixed")
    assert (bf16["weights"], bf16["gradients"], bf16["optimizer"]) == (2e9, 2e9, 12e9)
    assert bf16["total"] == 16e9 and bf16["activations"] == 0
    assert M.training_memory(1e9, "fp32", "adamw", "mixed")["total"] == 16e9  # 4 + 4 + 8
    assert M.training_memory(1e9, "bf16", "sgd_momentum", "mixed")["optimizer"] == 8e9
    with_acts = M.training_memory(7e9, "bf16", "adam", "mixed", batch=1, seq=4096, hidden=4096,
                                  n_layers=32, n_heads=32)
    assert with_acts["activations"] == M.activation_memory(1, 4096, 4096, 32, 32)
    ckpt = M.training_memory(7e9, "bf16", "adam", "mixed", batch=1, seq=4096, hidden=4096,
                             n_layers=32, n_heads=32, checkpointing=True)
    assert ckpt["activations"] == 2 * 4096 * 4096 * 32


# --- activations and KV cache -----------------------------------------------------------

@pytest.mark.parametrize("b, s, h, L, a", [(1, 2048, 12288, 96, 96), (4, 512, 768, 12, 12),
                                           (2, 128, 128, 4, 4)])
def test_activation_memory_is_korthikanti_eq1(b, s, h, L, a):
    expected = s * b * h * (34 + 5 * a * s / h) * L
    assert M.activation_memory(b, s, h, L, a) == round(expected)


def test_activation_memory_variants():
    b, s, h, L, a = 2, 256, 512, 3, 8
    sbh, scores = s * b * h, a * s * s * b
    assert M.activation_memory(b, s, h, L, a, dropout=False) == L * (32 * sbh + 2 * scores)
    assert M.activation_memory(b, s, h, L, a, flash=True) == L * 34 * sbh
    assert M.activation_memory(b, s, h, L, a, 4, dropout=False) == L * 4 * (16 * sbh + scores)
    # grouped-query attention keeps smaller K and V
    assert M.activation_memory(b, s, h, L, a, n_kv_heads=2) < M.activation_memory(b, s, h, L, a)


def test_activation_memory_llama_architecture():
    """SwiGLU keeps four s*b*d_ff tensors; no dropout keeps no masks and no dropout outputs."""
    b, s, h, L, a, f = 1, 4096, 4096, 32, 32, 11008
    sbh, scores = s * b * h, a * s * s * b
    got = M.activation_memory(b, s, h, L, a, dropout=False, d_ff=f, mlp="swiglu")
    assert got == L * 2 * (8 * sbh + 4 * s * b * f + scores)
    gpt3_style = M.activation_memory(b, s, h, L, a)
    assert 1.8 < gpt3_style / got < 2.0  # the Korthikanti defaults almost double it


def test_kv_cache_bytes_known_values():
    llama7, llama70 = M.LLAMA_CONFIGS["llama-2-7b"], M.LLAMA_CONFIGS["llama-2-70b"]
    assert M.kv_cache_bytes(1, 4096, llama7.n_layer, llama7.n_head, llama7.head_dim) == 2 * M.GiB
    # GQA: 8 KV heads instead of 64 divide the cache by 8 (80 layers instead of 32)
    assert M.kv_cache_bytes(1, 4096, 80, llama70.n_kv_head, 128) == 80 * 8 * 128 * 4096 * 4


def test_kv_cache_bytes_matches_a_real_cache():
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=64, block_size=32, n_layer=2, n_head=4, d_model=32, n_kv_head=2)
    model = GPT(cfg).eval()
    caches = model.new_kv_caches()
    with torch.no_grad():
        model(torch.randint(0, 64, (3, 20)), kv_caches=caches)
    measured = sum(c.nbytes() for c in caches)
    assert isinstance(caches[0], KVCache)
    assert measured == M.kv_cache_bytes(3, 20, 2, 2, 8, dtype="fp32")


# --- ZeRO and communication -------------------------------------------------------------

def test_zero_paper_example():
    got = [M.zero_memory(7.5e9, 64, stage) / M.GB for stage in range(4)]
    assert got == pytest.approx([120, 31.40625, 16.640625, 1.875])
    assert [round(g, 1) for g in got] == [120.0, 31.4, 16.6, 1.9]


def test_zero_single_device_is_stage_zero():
    assert {M.zero_memory(1e9, 1, s) for s in range(4)} == {16e9}
    assert M.zero_memory(1e9, 8, 3, k=6) == (4 + 6) * 1e9 / 8


def test_communication_volume():
    ddp = M.communication_volume(1e9, 8, "ddp")
    assert ddp == 2 * 7 / 8 * 1e9 * 2
    assert M.communication_volume(1e9, 8, "fsdp") == 1.5 * ddp
    assert M.communication_volume(1e9, 1, "ddp") == 0


# --- counting parameters ----------------------------------------------------------------

PUBLISHED = {"llama-3.2-1b": 1_235_814_400, "llama-2-7b": 6_738_415_616,
             "llama-2-13b": 13_015_864_320, "llama-2-70b": 68_976_648_192}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_llama_formula_equals_meta_walk_and_published(name):
    cfg = M.LLAMA_CONFIGS[name]
    with torch.device("meta"):
        model = M.LlamaSkeleton(cfg)
    assert M.count_params(model) == M.llama_param_count(cfg) == PUBLISHED[name]


def test_gpt2_124m_on_meta_tied():
    cfg = GPTConfig(vocab_size=50257, block_size=1024, n_layer=12, n_head=12, d_model=768)
    with torch.device("meta"):
        model = GPT(cfg)
    assert M.count_params(model) == M.gpt_param_count(cfg) == 124_439_808 + 50257 * 768
    model.lm_head.weight = model.tok_emb.weight  # GPT-2 ties the output to the input embedding
    assert M.count_params(model) == M.gpt_param_count(cfg, tied=True) == 124_439_808


@pytest.mark.parametrize("cfg", [
    TINY,
    GPTConfig(vocab_size=300, block_size=64, n_layer=3, n_head=6, d_model=48, n_kv_head=2,
              d_ff=100, bias=False, pos_emb="sinusoidal"),
])
def test_gpt_formula_equals_walk(cfg):
    assert M.count_params(GPT(cfg)) == M.gpt_param_count(cfg)


def test_count_params_trainable_only():
    model = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
    model[0].requires_grad_(False)
    assert M.count_params(model) == 15 + 8
    assert M.count_params(model, trainable_only=True) == 8


# --- exact measurement ------------------------------------------------------------------

def test_parameter_gradient_optimizer_bytes():
    model = nn.Sequential(nn.Linear(10, 20), nn.Linear(20, 5))
    n = M.count_params(model)
    opt = torch.optim.Adam(model.parameters())
    assert M.parameter_bytes(model) == 4 * n and M.gradient_bytes(model) == 0
    model(torch.randn(3, 10)).sum().backward()
    opt.step()
    assert M.gradient_bytes(model) == 4 * n
    # exp_avg and exp_avg_sq per parameter, plus one fp32 `step` scalar per tensor
    assert M.optimizer_state_bytes(opt) == 8 * n + 4 * 4


def test_saved_tensor_meter_dedups_views_and_skips_parameters():
    w = nn.Parameter(torch.randn(8, 8))
    x = torch.randn(4, 8, requires_grad=True)
    with M.SavedTensorMeter(exclude=[w]) as meter:
        y = x @ w                      # saves x (w excluded)
        z = (x.view(2, 16) * 2).sum() + (y.relu() ** 2).sum()   # relu out saved; x view dup
    z.backward()
    # x (4x8) once, relu output (4x8) once; pow saves its input = the relu output
    assert meter.bytes == 2 * 4 * 8 * 4
    assert meter.by_dtype == {torch.float32: meter.bytes}


@pytest.mark.parametrize("batch, seq", [(2, 32), (4, 128)])
def test_measured_training_step_matches_estimator(batch, seq):
    torch.manual_seed(0)
    model = GPT(TINY)
    idx = torch.randint(0, TINY.vocab_size, (batch, seq))
    got = M.measure_training_step(model, idx, idx)
    n = M.count_params(model)
    assert got["weights"] == got["gradients"] == 4 * n
    assert got["optimizer"] == 8 * n + 4 * len(list(model.parameters()))
    est = M.gpt_activation_memory(TINY, batch, seq)
    # the chapter says "within 1%": the estimator leaves out only O(s*b) and O(s^2) terms
    assert est <= got["activations"] < 1.01 * est


@pytest.mark.parametrize("batch, seq", [(1, 32), (8, 128)])
def test_meter_agrees_with_allocator_events_of_a_plain_forward(batch, seq):
    """Two independent methods: what autograd saves (hooks) vs what stays allocated."""
    from course_lib.measure import measure_live_bytes

    torch.manual_seed(0)
    model = GPT(TINY).train()
    idx = torch.randint(0, TINY.vocab_size, (batch, seq))
    (logits, loss), live = measure_live_bytes(model, idx, idx)
    left_behind = live - M.tensor_bytes([logits, loss])   # kept only for backward
    del logits, loss
    with M.SavedTensorMeter(exclude=list(model.parameters())) as meter:
        model(idx, idx)
    saved_here = meter.bytes - idx.nbytes  # the meter also counts the ids, made before the call
    # equal up to a few scalars that are neither outputs nor saved (old meter: +3 score copies)
    assert abs(saved_here - left_behind) <= 64


def test_repeated_measurements_do_not_grow_memory():
    from course_lib.measure import measure_live_bytes

    torch.manual_seed(0)
    model = GPT(TINY)
    idx = torch.randint(0, TINY.vocab_size, (2, 32))
    first = M.measure_training_step(model, idx, idx)
    results, live = measure_live_bytes(
        lambda: [M.measure_training_step(model, idx, idx) for _ in range(2)])
    assert all(r == first for r in results)
    assert live == 0  # the old meter leaked one score tensor per layer per call


def test_softmax_keeps_no_copy_of_its_input():
    """The shift is taken from a detached tensor, so no amax node saves the scores."""
    from course_lib.attention import softmax

    x = torch.randn(3, 5, 7, requires_grad=True)
    with M.SavedTensorMeter(exclude=[x]) as meter:
        y = softmax(x.clone())   # the clone stands for the scores of a real layer
    full = [r for r in meter.records if r[0] == (3, 5, 7)]
    assert len(full) == 1          # exp(x - m): saved by exp and by the division, one storage
    y.sum().backward()
    torch.testing.assert_close(y, torch.softmax(x, -1))


# --- what fits where and the CLI --------------------------------------------------------

def test_fits_table():
    rows = {(r["model"], r["scenario"]): r for r in M.fits_table()}
    assert rows[("llama-2-7b", "inference fp16")]["24 GiB"]
    assert not rows[("llama-2-7b", "full fine-tune")]["80 GiB"]
    assert not rows[("llama-2-70b", "inference fp16")]["80 GiB"]
    assert rows[("llama-2-70b", "inference int4")]["48 GiB"]
    assert rows[("llama-2-70b", "QLoRA")]["48 GiB"]
    assert not rows[("llama-2-70b", "QLoRA")]["24 GiB"]


def test_cli_prints_a_table(capsys):
    assert M.main(["--params", "7e9", "--dtype", "bf16", "--optimizer", "adam", "--seq", "4096",
                   "--batch", "1", "--hidden", "4096", "--layers", "32", "--heads", "32"]) == 0
    out = capsys.readouterr().out
    assert "optimizer" in out and "84.00" in out and "total" in out


@pytest.mark.parametrize("argv", [["--params", "-7e9"], ["--params", "abc"],
                                  ["--params", "7e9", "--dtype", "fp64"],
                                  ["--params", "7e9", "--optimizer", "lion"],
                                  ["--params", "7e9", "--seq", "0"],
                                  ["--params", "7e9", "--seq", "128", "--hidden", "100",
                                   "--layers", "2", "--heads", "3"],
                                  ["--params", "7e9", "--inference"]])
def test_cli_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        M.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "error:" in err and "Traceback" not in err


def test_cli_as_module_no_traceback():
    run = subprocess.run([sys.executable, "-m", "course_lib.memory", "--params", "-1"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert "usage:" in run.stderr and "Traceback" not in run.stderr


# --- bad input --------------------------------------------------------------------------

@pytest.mark.parametrize("call", [
    lambda: M.bytes_per_param("fp64"),
    lambda: M.model_memory(-1, "fp32"),
    lambda: M.model_memory(float("nan"), "fp32"),
    lambda: M.model_memory(1e9, "float32"),
    lambda: M.training_memory(-5),
    lambda: M.training_memory(1e9, optimizer="lion"),
    lambda: M.training_memory(1e9, recipe="magic"),
    lambda: M.training_memory(1e9, recipe="mixed", batch=1, seq=128),
    lambda: M.activation_memory(0, 128, 128, 4, 4),
    lambda: M.activation_memory(1, -128, 128, 4, 4),
    lambda: M.activation_memory(1, 128, 100, 4, 3),
    lambda: M.kv_cache_bytes(1, 128, 4, 4, 32, dtype="fp64"),
    lambda: M.kv_cache_bytes(-1, 128, 4, 4, 32),
    lambda: M.zero_memory(1e9, 0, 1),
    lambda: M.zero_memory(1e9, 8, 4),
    lambda: M.zero_memory(1e9, 8, -1),
    lambda: M.zero_memory(-1e9, 8, 1),
    lambda: M.communication_volume(1e9, 0, "ddp"),
    lambda: M.communication_volume(1e9, 8, "pipeline"),
])
def test_bad_input_raises_value_error(call):
    with pytest.raises(ValueError):
        call()


def test_error_messages_name_the_problem():
    with pytest.raises(ValueError, match="unknown dtype 'fp64'"):
        M.bytes_per_param("fp64")
    with pytest.raises(ValueError, match="stage must be 0, 1, 2 or 3"):
        M.zero_memory(1e9, 8, 7)
    with pytest.raises(ValueError, match="n_devices must be between 1 and"):
        M.zero_memory(1e9, 0, 2)
    with pytest.raises(ValueError, match="unknown optimizer 'lion'"):
        M.training_memory(1e9, optimizer="lion")


# Every public function: negative, NaN, fractional, huge and wrong-type sizes are refused with
# an error that names the argument (negative sizes used to give negative bytes).
_CFG7 = M.LLAMA_CONFIGS["llama-2-7b"]
_BAD_SIZES = [
    (lambda v: M.model_memory(v, "fp32"), "n_params"),
    (lambda v: M.training_memory(v), "n_params"),
    (lambda v: M.training_memory(1e9, "bf16", recipe="mixed", batch=v, seq=8, hidden=8,
                                 n_layers=1, n_heads=1), "batch"),
    (lambda v: M.training_memory(1e9, "bf16", recipe="mixed", batch=1, seq=v, hidden=8,
                                 n_layers=1, n_heads=1, checkpointing=True), "seq"),
    (lambda v: M.activation_memory(1, v, 128, 4, 4), "seq"),
    (lambda v: M.activation_memory(1, 8, v, 4, 4), "hidden"),
    (lambda v: M.activation_memory(1, 8, 128, v, 4), "n_layers"),
    (lambda v: M.activation_memory(1, 8, 128, 4, 4, d_ff=v), "d_ff"),
    (lambda v: M.kv_cache_bytes(1, v, 4, 4, 32), "seq"),
    (lambda v: M.kv_cache_bytes(1, 8, 4, 4, v), "head_dim"),
    (lambda v: M.zero_memory(v, 8, 1), "n_params"),
    (lambda v: M.zero_memory(1e9, v, 1), "n_devices"),
    (lambda v: M.communication_volume(v, 8, "ddp"), "n_params"),
    (lambda v: M.communication_volume(1e9, v, "ddp"), "n_devices"),
    (lambda v: M.gpt_activation_memory(TINY, v, 16), "batch"),
    (lambda v: M.gpt_activation_memory(TINY, 1, v), "seq"),
    (lambda v: M.lora_param_count(_CFG7, v), "r"),
    (lambda v: M.fits_table(seq=v), "seq"),
    (lambda v: M.LlamaConfig(d_model=v), "d_model"),
]
_BAD_SIZES_SHAPES = {_BAD_SIZES[2][0], _BAD_SIZES[3][0]}  # training_memory's optional shapes


@pytest.mark.parametrize("call, name", _BAD_SIZES)
@pytest.mark.parametrize("value, error", [(-1, ValueError), (float("nan"), ValueError),
                                          (2.5, ValueError), (1e300, ValueError),
                                          (float("inf"), ValueError), ("8", TypeError),
                                          (True, TypeError), (None, TypeError)])
def test_every_size_is_checked(call, name, value, error):
    if value is None and (name == "d_ff" or call in _BAD_SIZES_SHAPES):
        pytest.skip("None means 'not given' here (the default, or no activations)")
    with pytest.raises(error, match=name):
        call(value)


@pytest.mark.parametrize("call, error, name", [
    (lambda: M.bytes_per_param(4), TypeError, "dtype"),
    (lambda: M.training_memory(1e9, optimizer=None), TypeError, "optimizer"),
    (lambda: M.training_memory(1e9, checkpointing=True), ValueError, "seed"),
    (lambda: M.training_memory(1e9, "bf16", recipe="mixed", checkpointing=True), ValueError,
     "shapes"),
    (lambda: M.training_memory(1e9, recipe="seed", batch=1, seq=8, hidden=8, n_layers=1,
                               n_heads=1), ValueError, "seed"),
    (lambda: M.activation_memory(1, 8, 8, 1, 1, bytes_per_value=-2), ValueError,
     "bytes_per_value"),
    (lambda: M.activation_memory(1, 8, 8, 1, 1, bytes_per_value=float("nan")), ValueError,
     "bytes_per_value"),
    (lambda: M.activation_memory(1, 8, 8, 1, 1, mlp="relu"), ValueError, "mlp"),
    (lambda: M.activation_memory(1, 8, 8, 1, 1, softmax_copies=0), ValueError,
     "softmax_copies"),
    (lambda: M.activation_memory(1, 8, 8, 4, 4, n_kv_heads=3), ValueError, "n_kv_heads"),
    (lambda: M.zero_memory(1e9, 8, 1.0), TypeError, "stage"),
    (lambda: M.zero_memory(1e9, 8, 1, k=-1), ValueError, "k"),
    (lambda: M.communication_volume(1e9, 8, 3), TypeError, "strategy"),
    (lambda: M.count_params("model"), TypeError, "module"),
    (lambda: M.gpt_param_count(_CFG7), TypeError, "config"),
    (lambda: M.llama_param_count(TINY), TypeError, "LlamaConfig"),
    (lambda: M.fits_table(["llama-9"]), ValueError, "configs"),
    (lambda: M.fits_table(overhead=float("nan")), ValueError, "overhead"),
    (lambda: M.breakdown_table({"weights": -1}), ValueError, "weights"),
    (lambda: M.breakdown_table({"weights": 1}, unit="TB"), ValueError, "unit"),
    (lambda: M.tensor_bytes([1, 2]), TypeError, "tensors"),
    (lambda: M.parameter_bytes(None), TypeError, "module"),
    (lambda: M.optimizer_state_bytes("adam"), TypeError, "optimizer"),
    (lambda: M.SavedTensorMeter(exclude=[3]), TypeError, "exclude"),
    (lambda: M.measure_training_step(GPT(TINY), torch.zeros(2, 8), torch.zeros(2, 8)),
     TypeError, "idx"),
    (lambda: M.measure_training_step(GPT(TINY), torch.zeros(2, 8, dtype=torch.long),
                                     torch.zeros(2, 8, dtype=torch.long), lr=float("nan")),
     ValueError, "lr"),
])
def test_bad_arguments_are_named(call, error, name):
    with pytest.raises(error, match=name):
        call()


@pytest.mark.parametrize("argv, says", [
    (["--params", "1e308"], "--params"),
    (["--params", "7e9", "--seq", "1e300"], "--seq"),
    (["--params", "7e9", "--checkpointing"], "--checkpointing"),
    (["--params", "7e9", "--hidden", "4096"], "--hidden"),
    (["--params", "7e9", "--recipe", "seed", "--seq", "128"], "recipe seed"),
    (["--params", "7e9", "--seq", "128", "--inference", "--checkpointing"], "--inference"),
    (["--params", "7.5", "--seq", "128"], "n_params"),
])
def test_cli_refuses_what_it_would_ignore_or_overflow(argv, says, capsys):
    with pytest.raises(SystemExit) as exc:
        M.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err


def test_cli_llama_architecture(capsys):
    assert M.main(["--params", "7e9", "--seq", "4096", "--hidden", "4096", "--layers", "32",
                   "--heads", "32", "--mlp", "swiglu", "--d-ff", "11008", "--no-dropout"]) == 0
    out = capsys.readouterr().out
    expected = M.activation_memory(1, 4096, 4096, 32, 32, dropout=False, d_ff=11008,
                                   mlp="swiglu")
    assert f"{expected / M.GB:.2f}" in out and "SwiGLU MLP, no dropout" in out
