"""Counting parameters, by formula from a config and by walking a module (on ``meta`` too).

Taught in book/02_memory.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .estimate import _check_positive_int, activation_memory


@dataclass(frozen=True)
class LlamaConfig:
    """A Llama-style decoder: RMSNorm, no biases, SwiGLU MLP, RoPE (no position weights)."""

    vocab_size: int = 32000
    d_model: int = 4096
    n_layer: int = 32
    n_head: int = 32
    n_kv_head: int | None = None
    d_ff: int = 11008
    tie_embeddings: bool = False

    def __post_init__(self):
        for name in ("vocab_size", "d_model", "n_layer", "n_head", "d_ff"):
            _check_positive_int(name, getattr(self, name))
        if self.n_kv_head is not None:
            _check_positive_int("n_kv_head", self.n_kv_head)
            if self.n_head % self.n_kv_head:
                raise ValueError(f"n_kv_head ({self.n_kv_head}) must divide n_head "
                                 f"({self.n_head})")
        if self.d_model % self.n_head:
            raise ValueError(f"n_head ({self.n_head}) must divide d_model ({self.d_model})")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_head


LLAMA_CONFIGS = {
    "llama-3.2-1b": LlamaConfig(128256, 2048, 16, 32, 8, 8192, tie_embeddings=True),
    "llama-2-7b": LlamaConfig(32000, 4096, 32, 32, None, 11008),
    "llama-2-13b": LlamaConfig(32000, 5120, 40, 40, None, 13824),
    "llama-2-70b": LlamaConfig(32000, 8192, 80, 64, 8, 28672),
}


class _RMSNorm(nn.Module):
    def __init__(self, d: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * self.weight


class _LlamaBlock(nn.Module):
    def __init__(self, c: LlamaConfig):
        super().__init__()
        kv = (c.n_kv_head or c.n_head) * c.head_dim
        self.norm1, self.norm2 = _RMSNorm(c.d_model), _RMSNorm(c.d_model)
        self.q_proj = nn.Linear(c.d_model, c.d_model, bias=False)
        self.k_proj = nn.Linear(c.d_model, kv, bias=False)
        self.v_proj = nn.Linear(c.d_model, kv, bias=False)
        self.o_proj = nn.Linear(c.d_model, c.d_model, bias=False)
        self.gate = nn.Linear(c.d_model, c.d_ff, bias=False)
        self.up = nn.Linear(c.d_model, c.d_ff, bias=False)
        self.down = nn.Linear(c.d_ff, c.d_model, bias=False)


class LlamaSkeleton(nn.Module):
    """The parameters of a Llama-style model, for counting (build it on the meta device)."""

    def __init__(self, c: LlamaConfig):
        super().__init__()
        self.config = c
        self.embed = nn.Embedding(c.vocab_size, c.d_model)
        self.blocks = nn.ModuleList(_LlamaBlock(c) for _ in range(c.n_layer))
        self.norm = _RMSNorm(c.d_model)
        self.lm_head = nn.Linear(c.d_model, c.vocab_size, bias=False)
        if c.tie_embeddings:
            self.lm_head.weight = self.embed.weight


def _check_config(c, cls_name: str, needed: tuple[str, ...]) -> None:
    missing = [n for n in needed if not hasattr(c, n)]
    if missing:
        raise TypeError(f"config must be a {cls_name} (missing {missing}), "
                        f"got {type(c).__name__}")


def llama_param_count(c: LlamaConfig) -> int:
    """Parameters of a Llama-style model, by formula."""
    if not isinstance(c, LlamaConfig):
        raise TypeError(f"c must be a LlamaConfig, got {type(c).__name__}")
    d, kv = c.d_model, (c.n_kv_head or c.n_head) * c.head_dim
    per_layer = 2 * d + 2 * d * d + 2 * d * kv + 3 * d * c.d_ff
    head = 0 if c.tie_embeddings else c.vocab_size * d
    return c.vocab_size * d + c.n_layer * per_layer + d + head


def gpt_param_count(config, tied: bool = False) -> int:
    """Parameters of ``course_lib.models.GPT(config)`` by formula (``tied``: lm_head = tok_emb)."""
    _check_config(config, "GPTConfig", ("d_model", "vocab_size", "n_layer", "n_head", "bias",
                                        "block_size", "pos_emb"))
    d, v, b = config.d_model, config.vocab_size, int(config.bias)
    d_ff = config.d_ff or 4 * d
    kv = (config.n_kv_head or config.n_head) * (d // config.n_head)
    layer_norm = 2 * d  # nn.LayerNorm keeps weight and bias whatever config.bias says
    attn = (d * d + b * d) * 2 + (d * kv + b * kv) * 2
    mlp = d * d_ff + b * d_ff + d_ff * d + b * d
    per_layer = 2 * layer_norm + attn + mlp
    pos = config.block_size * d if config.pos_emb == "learned" else 0
    head = 0 if tied else v * d
    return v * d + pos + config.n_layer * per_layer + layer_norm + head


def gpt_activation_memory(config, batch: int, seq: int, bytes_per_value: float = 4,
                          softmax_copies: int = 2) -> int:
    """Activation bytes ``course_lib.models.GPT`` saves for backward in one training step.

    The blocks by :func:`activation_memory`, with ``softmax_copies=2`` because the course's
    readable softmax keeps two ``a*s*s*b`` tensors: its ``exp`` (saved by ``exp`` and by the
    division) and the normalised weights (saved by ``weights @ v``); its max is taken from a
    detached tensor, so no node keeps the scores. Plus the head: the final LayerNorm's input
    and output (``2*s*b*h`` values) and the log-softmax of the logits that cross-entropy keeps
    (``s*b*V`` values). Left out: LayerNorm statistics, softmax row sums, masks and token ids
    (under 1% at the course's shapes). Grouped-query configs count full-size K and V, since
    ``repeat_kv`` materialises them before the matmuls that save them.
    """
    _check_config(config, "GPTConfig", ("d_model", "vocab_size", "n_layer", "n_head",
                                        "dropout", "d_ff"))
    blocks = activation_memory(batch, seq, config.d_model, config.n_layer, config.n_head,
                               bytes_per_value, dropout=config.dropout > 0,
                               d_ff=config.d_ff or 4 * config.d_model,
                               softmax_copies=softmax_copies)
    head = (2 * config.d_model + config.vocab_size) * seq * batch * bytes_per_value
    return round(blocks + head)


def count_params(module: nn.Module, trainable_only: bool = False) -> int:
    """Parameters of ``module`` by walking it; a shared (tied) tensor counts once."""
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be an nn.Module, got {type(module).__name__}")
    seen, total = set(), 0
    for p in module.parameters():  # .parameters() already skips repeats of the same object
        if trainable_only and not p.requires_grad:
            continue
        if id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
    return total
