import copy

import pytest
import torch
from torch import nn

from course_lib import peft
from course_lib.models import GPT, GPTConfig
from course_lib.quant import QuantLinear


def small_gpt():
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=64, block_size=16, n_layer=2, n_head=2, d_model=16))


def test_lora_param_count_matches_the_notes_and_a_real_layer():
    assert peft.lora_param_count(512, 64, 4) == 2304
    layer = peft.LoRALinear(nn.Linear(512, 64), r=4, alpha=8)
    assert peft.count_trainable(layer) == 2304


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, None])
def test_rank_must_be_a_positive_int(bad):
    with pytest.raises(ValueError, match="r "):
        peft.LoRALinear(nn.Linear(8, 8), r=bad, alpha=1)
    with pytest.raises(ValueError):
        peft.lora_param_count(8, 8, bad)


@pytest.mark.parametrize("bad", [-1.0, 0, float("nan"), float("inf")])
def test_alpha_must_be_positive_and_finite(bad):
    with pytest.raises(ValueError, match="alpha"):
        peft.LoRALinear(nn.Linear(8, 8), r=2, alpha=bad)


def test_rank_larger_than_the_layer_and_non_linear_base_are_rejected():
    with pytest.raises(ValueError, match="exceeds"):
        peft.LoRALinear(nn.Linear(4, 8), r=5, alpha=1)
    with pytest.raises(TypeError):
        peft.LoRALinear(nn.Conv1d(4, 4, 1), r=1, alpha=1)


def test_b_starts_at_zero_so_the_wrapped_layer_equals_its_base():
    base = nn.Linear(8, 6)
    layer = peft.LoRALinear(copy.deepcopy(base), r=2, alpha=4)
    assert torch.count_nonzero(layer.lora_B) == 0
    x = torch.randn(3, 8)
    assert torch.equal(layer(x), base(x))


def test_forward_is_base_plus_scaled_low_rank_update():
    layer = peft.LoRALinear(nn.Linear(8, 6), r=2, alpha=6)
    with torch.no_grad():
        layer.lora_B.normal_()
    x = torch.randn(5, 8)
    want = x @ (layer.base.weight + 3.0 * layer.lora_B @ layer.lora_A).T + layer.base.bias
    torch.testing.assert_close(layer(x), want)


def test_apply_lora_freezes_the_base_and_counts_adapters():
    model = peft.apply_lora(small_gpt(), r=2, alpha=4, targets=("q_proj", "v_proj"))
    # 2 layers x 2 targets x r * (16 + 16)
    assert peft.count_trainable(model) == 2 * 2 * peft.lora_param_count(16, 16, 2)
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert all(n.endswith(("lora_A", "lora_B")) for n in names)


def test_apply_lora_with_no_matching_linear_is_an_error():
    with pytest.raises(ValueError, match="no Linear"):
        peft.apply_lora(small_gpt(), r=2, alpha=4, targets=("not_a_layer",))
    with pytest.raises(ValueError, match="no Linear"):
        peft.apply_lora(nn.Sequential(nn.ReLU(), nn.Tanh()), r=1, alpha=1, targets=("0",))
    with pytest.raises(ValueError, match="targets"):
        peft.apply_lora(small_gpt(), r=2, alpha=4, targets="q_proj")


def test_merge_gives_plain_linears_with_the_same_outputs():
    model = peft.apply_lora(small_gpt(), r=2, alpha=4, targets=("q_proj", "out_proj", "fc1"))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("lora_B"):
                p.normal_(std=0.5)
    x = torch.randint(0, 64, (2, 10))
    before = model(x)[0]
    merged = peft.merge_lora(model)
    assert not any(isinstance(m, peft.LoRALinear) for m in merged.modules())
    torch.testing.assert_close(merged(x)[0], before, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="no LoRALinear"):
        peft.merge_lora(merged)


def test_lora_on_a_quantized_base_and_merge():
    base = nn.Linear(64, 32)
    q = QuantLinear.from_linear(base, "nf4", double_quant=True)
    layer = peft.LoRALinear(q, r=4, alpha=8)
    with torch.no_grad():
        layer.lora_B.normal_()
    x = torch.randn(3, 64)
    want = x @ (q.dequantized_weight() + 2.0 * layer.lora_B @ layer.lora_A).T + base.bias
    torch.testing.assert_close(layer(x), want, atol=1e-5, rtol=1e-5)
    merged = peft.merge_lora(nn.Sequential(layer))
    torch.testing.assert_close(merged(x), want, atol=1e-5, rtol=1e-5)


def test_adapters_swap_at_run_time():
    model = peft.apply_lora(small_gpt(), r=2, alpha=4, targets=("q_proj",))
    x = torch.randint(0, 64, (1, 8))
    plain = model(x)[0]
    zero = peft.lora_state(model)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("lora_B"):
                p.fill_(0.3)
    tenant = peft.lora_state(model)
    assert not torch.allclose(model(x)[0], plain)
    peft.load_lora_state(model, zero)
    torch.testing.assert_close(model(x)[0], plain)
    peft.load_lora_state(model, tenant)
    assert not torch.allclose(model(x)[0], plain)
    bad = {k: v[:1] for k, v in tenant.items()}
    with pytest.raises(ValueError, match="shape"):
        peft.load_lora_state(model, bad)
    with pytest.raises(ValueError, match="does not fit"):
        peft.load_lora_state(model, {})


def test_prompt_tuning_trains_only_the_prompt_and_matches_a_plain_forward():
    model = small_gpt()
    pt = peft.PromptTuning(model, k=3, init_ids=[5, 6])
    assert peft.count_trainable(pt) == 3 * 16
    x = torch.randint(0, 64, (2, 6))
    # the soft prompt made of real token embeddings = those tokens typed in front
    full = model(torch.cat([torch.tensor([[5, 6, 5]] * 2), x], dim=1))[0][:, 3:]
    torch.testing.assert_close(pt(x)[0], full, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="k "):
        peft.PromptTuning(model, k=0)
    with pytest.raises(ValueError, match="block_size"):
        pt(torch.randint(0, 64, (1, 15)))


class TwoLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.q_proj = nn.Linear(12, 10)
        self.mlp = nn.Linear(10, 12)

    def forward(self, x):
        return self.mlp(torch.relu(self.q_proj(x)))


def _same_adapters_same_outputs(ours, theirs, names=("q_proj", "mlp")):
    """Give HF peft's adapters our A and B (B non-zero, so the update shows), then check that
    both models give the same outputs."""
    with torch.no_grad():
        for name in names:
            mine = getattr(ours, name)
            mine.lora_B.normal_()
            hf = theirs.base_model.model.get_submodule(name)
            hf.lora_A["default"].weight.copy_(mine.lora_A)
            hf.lora_B["default"].weight.copy_(mine.lora_B)
    x = torch.randn(4, 12)
    torch.testing.assert_close(ours(x), theirs(x), atol=1e-6, rtol=1e-6)


def test_same_count_and_outputs_as_hf_peft():
    hf_peft = pytest.importorskip("peft")
    torch.manual_seed(0)
    ours = TwoLayer()
    theirs = copy.deepcopy(ours)
    peft.apply_lora(ours, r=3, alpha=6, targets=("q_proj", "mlp"))
    config = hf_peft.LoraConfig(r=3, lora_alpha=6, target_modules=["q_proj", "mlp"],
                                lora_dropout=0.0, bias="none")
    theirs = hf_peft.get_peft_model(theirs, config)
    n_theirs = sum(p.numel() for p in theirs.parameters() if p.requires_grad)
    assert peft.count_trainable(ours) == n_theirs == 3 * (12 + 10) + 3 * (10 + 12)
    _same_adapters_same_outputs(ours, theirs)
    # and the merged weights agree too
    hf_merged = theirs.merge_and_unload()
    peft.merge_lora(ours)
    torch.testing.assert_close(ours.q_proj.weight, hf_merged.q_proj.weight)


def test_chapter_5_diagrams_draw_and_check_their_input():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from course_lib.plots import lora_diagram, token_strip

    fig = lora_diagram(64, 512, 4)
    texts = " ".join(t.get_text() for t in fig.axes[0].texts)
    assert "2,304" in texts and "32,768" in texts
    plt.close(fig)
    fig, ax = plt.subplots()
    token_strip(ax, ["a", "b"], [True, False])
    assert len(ax.patches) == 2
    with pytest.raises(ValueError, match="flags"):
        token_strip(ax, ["a", "b"], [True])
    plt.close(fig)


# ---- cases that catch subtle bugs (tools/mutants.py breaks the module on purpose)
def test_scale_is_alpha_over_r_when_r_does_not_divide_alpha():
    # alpha / r = 5 / 2 = 2.5; an integer division would give 2 and pass every even ratio
    torch.manual_seed(0)
    layer = peft.LoRALinear(nn.Linear(8, 6), r=2, alpha=5)
    assert layer.scaling == 2.5
    with torch.no_grad():
        layer.lora_B.normal_()
    x = torch.randn(5, 8)
    want = x @ (layer.base.weight + 2.5 * layer.lora_B @ layer.lora_A).T + layer.base.bias
    torch.testing.assert_close(layer(x), want)
    torch.testing.assert_close(layer.delta_weight(), 2.5 * layer.lora_B @ layer.lora_A)


def test_odd_ratio_matches_hf_peft_before_and_after_merging():
    hf_peft = pytest.importorskip("peft")
    torch.manual_seed(1)
    ours = TwoLayer()
    theirs = copy.deepcopy(ours)
    peft.apply_lora(ours, r=4, alpha=7, targets=("q_proj", "mlp"))       # scale 1.75
    config = hf_peft.LoraConfig(r=4, lora_alpha=7, target_modules=["q_proj", "mlp"],
                                lora_dropout=0.0, bias="none")
    theirs = hf_peft.get_peft_model(theirs, config)
    _same_adapters_same_outputs(ours, theirs)
    hf_merged = theirs.merge_and_unload()
    peft.merge_lora(ours)
    for name in ("q_proj", "mlp"):
        torch.testing.assert_close(getattr(ours, name).weight,
                                   getattr(hf_merged, name).weight, atol=1e-6, rtol=1e-6)


def test_merge_keeps_a_layer_without_bias_without_bias():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 6, bias=False), nn.ReLU(), nn.Linear(6, 4))
    peft.apply_lora(model, r=2, alpha=3, targets=("0", "2"))
    with torch.no_grad():
        model[0].lora_B.normal_()
        model[2].lora_B.normal_()
    x = torch.randn(5, 8)
    before = model(x)
    peft.merge_lora(model)
    assert isinstance(model[0], nn.Linear) and model[0].bias is None
    assert model[2].bias is not None
    torch.testing.assert_close(model(x), before, atol=1e-5, rtol=1e-5)


class Projections(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(4, 4)
        self.q_proj = nn.Linear(4, 4)
        self.inner = nn.Sequential()
        self.inner.add_module("proj", nn.Linear(4, 4))


def test_apply_lora_matches_whole_module_names_not_suffixes():
    model = peft.apply_lora(Projections(), r=1, alpha=1, targets=("proj",))
    # "proj" names the layer proj (at any depth), not q_proj, whose name merely ends in it
    assert isinstance(model.proj, peft.LoRALinear)
    assert isinstance(model.inner.proj, peft.LoRALinear)
    assert type(model.q_proj) is nn.Linear
    assert peft.count_trainable(model) == 2 * peft.lora_param_count(4, 4, 1)
