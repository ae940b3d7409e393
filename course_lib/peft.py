"""Parameter-efficient fine-tuning: LoRA (and QLoRA, LoRA on a quantized base) and prompt tuning.

Taught in book/05_finetuning.md. The pretrained weights stay frozen; only a few new ones
train:

- ``LoRALinear`` adds ``(alpha / r) * B @ A`` beside a frozen weight ``W`` (Hu et al. 2021):
  ``A`` is (r, d_in), ``B`` is (d_out, r) and starts at zero, so the wrapped layer starts out
  equal to its base. The base may be an ``nn.Linear`` or chapter 3's ``QuantLinear`` (QLoRA).
- ``apply_lora`` / ``merge_lora`` wrap and unwrap a model's Linears; ``lora_state`` and
  ``load_lora_state`` save and swap adapters, so one base serves many tasks.
- ``PromptTuning`` prepends ``k`` trainable vectors (a soft prompt) to a frozen GPT's input
  (Lester et al. 2021).
"""

from __future__ import annotations

import math
from numbers import Integral, Real

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_ids, check_tensor
from .attention import causal_mask
from .models import token_loss

__all__ = ["LoRALinear", "PromptTuning", "apply_lora", "count_trainable", "lora_param_count",
           "lora_state", "load_lora_state", "merge_lora"]


def _check_rank_alpha(where: str, r, alpha) -> None:
    if isinstance(r, bool) or not isinstance(r, Integral) or r < 1:
        raise ValueError(f"{where}: r (the LoRA rank) must be a positive integer, got {r!r}")
    if isinstance(alpha, bool) or not isinstance(alpha, Real) or not math.isfinite(alpha) \
            or alpha <= 0:
        raise ValueError(f"{where}: alpha (the LoRA scale numerator) must be a positive finite "
                         f"number, got {alpha!r}")


def _check_model(where: str, model) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise TypeError(f"{where}: model must be a torch nn.Module, got {type(model).__name__}")
    return model


def lora_param_count(d_in: int, d_out: int, r: int) -> int:
    """Trainable parameters of a rank-``r`` LoRA on a (d_out, d_in) weight: ``r * (d_in + d_out)``.

    >>> lora_param_count(512, 64, 4)   # the source notes' example
    2304
    """
    for name, value in (("d_in", d_in), ("d_out", d_out), ("r", r)):
        if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
            raise ValueError(f"lora_param_count: {name} must be a positive integer, "
                             f"got {value!r}")
    return int(r) * (int(d_in) + int(d_out))


class LoRALinear(nn.Module):
    """``y = base(x) + (alpha / r) * x @ A.T @ B.T`` with ``base`` frozen.

    ``A`` starts Kaiming-uniform (as in the LoRA reference code and HF ``peft``), ``B`` at
    zero: the product is zero, so training starts from the pretrained function.
    """

    def __init__(self, base: nn.Module, r: int, alpha: float):
        super().__init__()
        _check_rank_alpha("LoRALinear", r, alpha)
        if not (isinstance(base, nn.Linear) or hasattr(base, "dequantized_weight")):
            raise TypeError(f"LoRALinear: base must be an nn.Linear or a QuantLinear, "
                            f"got {type(base).__name__}")
        d_in, d_out = base.in_features, base.out_features
        if r > min(d_in, d_out):
            raise ValueError(f"LoRALinear: r={r} exceeds min(d_in, d_out)={min(d_in, d_out)}")
        self.base, self.r, self.alpha = base, int(r), float(alpha)
        self.scaling = self.alpha / self.r
        for p in base.parameters():
            p.requires_grad_(False)
        self.lora_A = nn.Parameter(torch.empty(r, d_in))
        self.lora_B = nn.Parameter(torch.zeros(d_out, r))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))

    @property
    def in_features(self) -> int:
        return self.base.in_features

    @property
    def out_features(self) -> int:
        return self.base.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_features("LoRALinear.forward", x, self.in_features)
        update = F.linear(F.linear(x, self.lora_A), self.lora_B)    # (..., r) -> (..., d_out)
        return self.base(x) + self.scaling * update

    def delta_weight(self) -> torch.Tensor:
        """The (d_out, d_in) update ``(alpha / r) * B @ A`` that merging adds to ``W``."""
        return self.scaling * (self.lora_B @ self.lora_A)

    def base_weight(self) -> torch.Tensor:
        if isinstance(self.base, nn.Linear):
            return self.base.weight
        return self.base.dequantized_weight()

    def extra_repr(self) -> str:
        return f"r={self.r}, alpha={self.alpha:g}"


def _check_features(where: str, x, d_in: int) -> None:
    check_tensor(where, "x", x, floating=True, min_dim=1)
    if x.shape[-1] != d_in:
        raise ValueError(f"{where}: x must end in d_in={d_in}, got shape {tuple(x.shape)}")


def _is_linear(module: nn.Module) -> bool:
    return isinstance(module, nn.Linear) or hasattr(module, "dequantized_weight")


def apply_lora(model: nn.Module, r: int, alpha: float,
               targets: tuple[str, ...] | list[str] = ("q_proj", "k_proj", "v_proj",
                                                       "out_proj")) -> nn.Module:
    """Freeze ``model`` and wrap, in place, every Linear whose name ends with a ``targets``
    entry in a ``LoRALinear``. Returns ``model``; only the adapters are trainable."""
    _check_model("apply_lora", model)
    _check_rank_alpha("apply_lora", r, alpha)
    if isinstance(targets, str) or not isinstance(targets, list | tuple) or not targets \
            or not all(isinstance(t, str) and t for t in targets):
        raise ValueError(f"apply_lora: targets must be a non-empty list of module names, "
                         f"got {targets!r}")
    chosen = [(name, mod) for name, mod in model.named_modules()
              if _is_linear(mod) and any(name == t or name.endswith("." + t) for t in targets)]
    if not chosen:
        linears = [n for n, m in model.named_modules() if _is_linear(m)]
        raise ValueError(f"apply_lora: no Linear layer matches targets={list(targets)}; the "
                         f"model's Linears are {linears[:8] or 'none'}")
    for p in model.parameters():
        p.requires_grad_(False)
    for name, mod in chosen:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, LoRALinear(mod, r, alpha))
    return model


@torch.no_grad()
def merge_lora(model: nn.Module) -> nn.Module:
    """Replace, in place, every ``LoRALinear`` by a plain ``nn.Linear`` holding ``W + BA * s``.

    The merged model computes the same outputs (up to float rounding) at no extra cost per
    token. A quantized base is dequantized into the merged fp32 weight. Returns ``model``.
    """
    _check_model("merge_lora", model)
    found = [(n, m) for n, m in model.named_modules() if isinstance(m, LoRALinear)]
    if not found:
        raise ValueError("merge_lora: the model has no LoRALinear layer to merge")
    for name, mod in found:
        bias = mod.base.bias
        merged = nn.Linear(mod.in_features, mod.out_features, bias=bias is not None)
        merged.weight.copy_(mod.base_weight().float() + mod.delta_weight())
        if bias is not None:
            merged.bias.copy_(bias)
        merged.requires_grad_(False)
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, merged)
    return model


def lora_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The adapter tensors only (``...lora_A``, ``...lora_B``): what one tenant ships."""
    _check_model("lora_state", model)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()
             if k.endswith(("lora_A", "lora_B"))}
    if not state:
        raise ValueError("lora_state: the model has no LoRA adapters")
    return state


@torch.no_grad()
def load_lora_state(model: nn.Module, state: dict[str, torch.Tensor]) -> nn.Module:
    """Swap an adapter in: copy ``state`` into the model's LoRA tensors (same names, shapes)."""
    _check_model("load_lora_state", model)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in
                                              state.values()):
        raise TypeError(f"load_lora_state: state must be a dict of tensors (from lora_state), "
                        f"got {type(state).__name__}")
    own = {k: v for k, v in model.state_dict().items() if k.endswith(("lora_A", "lora_B"))}
    if set(own) != set(state):
        missing, extra = sorted(set(own) - set(state)), sorted(set(state) - set(own))
        raise ValueError(f"load_lora_state: adapter does not fit the model (missing "
                         f"{missing[:3]}, unexpected {extra[:3]})")
    for k, v in state.items():
        if own[k].shape != v.shape:
            raise ValueError(f"load_lora_state: {k} has shape {tuple(v.shape)}, the model's "
                             f"is {tuple(own[k].shape)}")
        if v.is_floating_point() and not torch.isfinite(v).all():
            raise ValueError(f"load_lora_state: state[{k!r}] contains NaN or inf")
        own[k].copy_(v)
    return model


def count_trainable(model: nn.Module) -> int:
    """Parameters with ``requires_grad`` (each tensor counted once)."""
    _check_model("count_trainable", model)
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values()
               if p.requires_grad)


class PromptTuning(nn.Module):
    """A frozen GPT with ``k`` trainable input vectors (a soft prompt) put before the tokens.

    ``forward(idx, targets)`` returns logits for the real tokens only, like ``GPT.forward``.
    The soft prompt starts as the embeddings of ``init_ids`` (real tokens, as Lester et al.
    recommend) repeated to length ``k``, or small random vectors.
    """

    def __init__(self, model: nn.Module, k: int, init_ids: list[int] | None = None):
        super().__init__()
        if isinstance(k, bool) or not isinstance(k, Integral) or k < 1:
            raise ValueError(f"PromptTuning: k (virtual tokens) must be a positive integer, "
                             f"got {k!r}")
        if not hasattr(model, "emb") or not hasattr(model, "blocks"):
            raise TypeError("PromptTuning: model must be a course GPT (with .emb and .blocks)")
        if k >= model.config.block_size:
            raise ValueError(f"PromptTuning: k={k} leaves no room in block_size="
                             f"{model.config.block_size}")
        self.model, self.k = model, int(k)
        model.requires_grad_(False)
        table = model.emb.tok_emb.weight.detach()
        if init_ids is not None:
            init_ids = check_ids("PromptTuning: init_ids", init_ids, table.shape[0])
        if init_ids:
            ids = torch.tensor([init_ids[i % len(init_ids)] for i in range(k)])
            start = table[ids].clone()
        else:
            start = 0.02 * torch.randn(k, table.shape[1])
        self.prompt = nn.Parameter(start)                               # (k, C)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        check_tensor("PromptTuning.forward", "idx", idx, floating=False, dims=(2,), nonempty=True)
        m, (b, t) = self.model, idx.shape
        if t + self.k > m.config.block_size:
            raise ValueError(f"PromptTuning.forward: idx has {t} tokens; with {self.k} virtual "
                             f"ones they exceed block_size={m.config.block_size}")
        x = torch.cat([self.prompt.expand(b, -1, -1), m.emb.tok_emb(idx)], dim=1)  # (B, k+T, C)
        pos = torch.arange(self.k + t, device=idx.device)
        x = x + (m.emb.pos_emb(pos) if m.emb.pos_emb is not None else m.emb.pos_table[pos])
        mask = causal_mask(self.k + t, device=idx.device)
        for block in m.blocks:
            x = block(x, mask=mask)
        logits = m.lm_head(m.ln_f(x[:, self.k:]))                      # (B, T, V)
        loss = None if targets is None else token_loss(logits, targets)
        return logits, loss
