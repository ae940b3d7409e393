"""The three transformer families, built from one ``Block``: decoder-only (GPT), encoder-only
(BERT-like) and encoder-decoder (T5-like). And ``load_pretrained``, the shipped model organism.

Taught in book/01_transformer.md; the GPT is the model organism of every later chapter.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import checkpoint
from ._checks import check_float, check_int, check_tensor
from .attention import KVCache, MultiHeadAttention, causal_mask
from .config import GPTConfig
from .files import sha256_file  # noqa: F401  (re-exported: older callers import it here)
from .tokenizer import load_tokenizer

WEIGHTS_DIR = Path(__file__).parent / "weights"


def sinusoidal_positions(n: int, d: int) -> torch.Tensor:
    """(n, d) table of Vaswani et al. (2017): sin on even dims, cos on odd, wavelengths up to
    10000 * 2 pi."""
    n = check_int("sinusoidal_positions", "n", n, low=1)
    d = check_int("sinusoidal_positions", "d", d, low=1)
    pos = torch.arange(n, dtype=torch.float32)[:, None]
    freq = torch.exp(-math.log(10000.0) * torch.arange(0, d, 2, dtype=torch.float32) / d)
    table = torch.zeros(n, d)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq[: d // 2])
    return table


class Embeddings(nn.Module):
    """Token embedding (a lookup table) plus a position embedding, learned or sinusoidal."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.block_size = cfg.block_size
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.d_model)
        if cfg.pos_emb == "learned":
            self.pos_emb = nn.Embedding(cfg.block_size, cfg.d_model)
        else:
            self.register_buffer("pos_table", sinusoidal_positions(cfg.block_size, cfg.d_model),
                                 persistent=False)
            self.pos_emb = None
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, idx: torch.Tensor, start: int = 0) -> torch.Tensor:
        if idx.dim() != 2 or idx.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"model input must be (B, T) integer token ids, got "
                             f"{tuple(idx.shape)} {idx.dtype}")
        t = idx.shape[1]
        if start + t > self.block_size:
            raise ValueError(f"sequence of {start + t} tokens exceeds block_size="
                             f"{self.block_size}")
        if idx.numel() and (idx.min() < 0 or idx.max() >= self.tok_emb.num_embeddings):
            raise ValueError(f"token ids must lie in [0, {self.tok_emb.num_embeddings})")
        pos = torch.arange(start, start + t, device=idx.device)
        p = self.pos_emb(pos) if self.pos_emb is not None else self.pos_table[pos]
        return self.drop(self.tok_emb(idx) + p)  # (B, T, C)


class MLP(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.fc1 = nn.Linear(cfg.d_model, cfg.ff_dim, bias=cfg.bias)
        self.fc2 = nn.Linear(cfg.ff_dim, cfg.d_model, bias=cfg.bias)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x):
        return self.drop(self.fc2(F.gelu(self.fc1(x))))


class Block(nn.Module):
    """Pre-LayerNorm transformer block: x + attn(ln(x)) [+ cross-attn(ln(x), context)] + mlp."""

    def __init__(self, cfg: GPTConfig, cross_attention: bool = False):
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.attn = MultiHeadAttention(cfg.d_model, cfg.n_heads, cfg.n_kv_heads, bias=cfg.bias)
        if cross_attention:
            self.ln_cross = nn.LayerNorm(cfg.d_model)
            self.cross_attn = MultiHeadAttention(cfg.d_model, cfg.n_heads, cfg.n_kv_heads,
                                                 bias=cfg.bias)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.mlp = MLP(cfg)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x, mask=None, kv_cache=None, context=None, context_mask=None):
        x = x + self.drop(self.attn(self.ln1(x), mask=mask, kv_cache=kv_cache))
        if context is not None:
            x = x + self.drop(self.cross_attn(self.ln_cross(x), mask=context_mask,
                                              context=context))
        return x + self.mlp(self.ln2(x))


def token_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over positions; targets of -100 are not predicted (padding, or
    tokens an MLM leaves unmasked)."""
    check_tensor("token_loss", "targets", targets, floating=False)
    if targets.shape != logits.shape[:-1]:
        raise ValueError(f"token_loss: targets {tuple(targets.shape)} must have the shape of "
                         f"logits without the vocab dim, {tuple(logits.shape[:-1])}")
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                           ignore_index=-100)


def _init_weights(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)


class GPT(nn.Module):
    """Decoder-only transformer trained by causal language modelling (the model organism)."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.emb = Embeddings(config)
        self.blocks = nn.ModuleList([Block(config) for _ in range(config.n_layer)])
        self.ln_f = nn.LayerNorm(config.d_model)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        _init_weights(self)

    @property
    def tok_emb(self) -> nn.Embedding:
        return self.emb.tok_emb

    @property
    def pos_emb(self) -> nn.Embedding | None:
        return self.emb.pos_emb

    def new_kv_caches(self) -> list[KVCache]:
        return [KVCache() for _ in self.blocks]

    def forward(self, idx, targets=None, kv_caches: list[KVCache] | None = None):
        """idx (B, T) -> logits (B, T, vocab); loss is next-token cross-entropy if targets."""
        past = 0 if kv_caches is None else len(kv_caches[0])
        x = self.emb(idx, start=past)                                # (B, T, C)
        t = idx.shape[1]
        mask = causal_mask(t, past + t, device=idx.device)           # (T, past + T)
        for i, block in enumerate(self.blocks):
            x = block(x, mask=mask, kv_cache=None if kv_caches is None else kv_caches[i])
        logits = self.lm_head(self.ln_f(x))                          # (B, T, V)
        loss = None if targets is None else token_loss(logits, targets)
        return logits, loss

    @torch.no_grad()
    def generate(self, idx, max_new_tokens: int, temperature: float = 1.0,
                 top_k: int | None = None, top_p: float | None = None, use_cache: bool = True,
                 generator: torch.Generator | None = None):
        """Autoregressive decoding. temperature=0 is greedy; top_k / top_p filter the
        distribution before sampling. With ``use_cache`` each step feeds one token and reuses
        the keys and values of the previous ones; past block_size tokens the context slides
        (the cache is rebuilt from the last block_size tokens), as without a cache."""
        check_tensor("generate", "idx", idx, floating=False, dims=(2,))
        if idx.shape[1] == 0:
            raise ValueError("generate: idx is empty; give at least one prompt token")
        max_new_tokens = check_int("generate", "max_new_tokens", max_new_tokens, low=0)
        bs = self.config.block_size
        caches, logits = None, None
        for _ in range(max_new_tokens):
            if not use_cache:
                logits, _ = self(idx[:, -bs:])
            elif caches is None or len(caches[0]) + 1 > bs:
                caches = self.new_kv_caches()                        # (re)fill the cache
                logits, _ = self(idx[:, -bs:], kv_caches=caches)
            else:
                logits, _ = self(idx[:, -1:], kv_caches=caches)
            next_id = sample_next(logits[:, -1, :], temperature, top_k, top_p, generator)
            idx = torch.cat([idx, next_id], dim=1)
        return idx


def sample_next(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    """Pick the next token id (B, 1) from last-position logits (B, V)."""
    check_tensor("sample_next", "logits", logits, floating=True, dims=(2,))
    if logits.shape[-1] == 0:
        raise ValueError("sample_next: logits has an empty vocab dim")
    if torch.isnan(logits).any():
        raise ValueError("sample_next: logits contain NaN")
    temperature = check_float("sample_next", "temperature", temperature)
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if top_k is not None:
        top_k = check_int("sample_next", "top_k", top_k)
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
    if top_p is not None:
        top_p = check_float("sample_next", "top_p", top_p)
        if not 0.0 < top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    if temperature == 0:
        return logits.argmax(dim=-1, keepdim=True)
    logits = logits / temperature
    if top_k is not None:
        kth = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        probs = F.softmax(sorted_logits, dim=-1)
        # drop a token when the tokens before it already cover top_p of the mass
        drop = probs.cumsum(dim=-1) - probs >= top_p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    probs = F.softmax(logits, dim=-1)
    return torch.multinomial(probs, 1, generator=generator)


class EncoderModel(nn.Module):
    """Encoder-only (BERT-like): bidirectional attention, a masked-LM head, and an optional
    classifier over the mean of the non-padding positions."""

    def __init__(self, config: GPTConfig, n_classes: int | None = None):
        super().__init__()
        self.config = config
        self.emb = Embeddings(config)
        self.blocks = nn.ModuleList([Block(config) for _ in range(config.n_layer)])
        self.ln_f = nn.LayerNorm(config.d_model)
        self.mlm_head = nn.Linear(config.d_model, config.vocab_size)
        self.classifier = nn.Linear(config.d_model, n_classes) if n_classes else None
        _init_weights(self)

    def encode(self, idx, pad_mask=None):
        """idx (B, T), pad_mask bool (B, T) True = real token -> hidden states (B, T, C)."""
        _check_pad_mask("EncoderModel", pad_mask, idx)
        mask = None if pad_mask is None else pad_mask[:, None, None, :]   # (B, 1, 1, T)
        x = self.emb(idx)
        for block in self.blocks:
            x = block(x, mask=mask)
        return self.ln_f(x)

    def forward(self, idx, pad_mask=None, targets=None):
        logits = self.mlm_head(self.encode(idx, pad_mask))              # (B, T, V)
        loss = None if targets is None else token_loss(logits, targets)
        return logits, loss

    def classify(self, idx, pad_mask=None, labels=None):
        if self.classifier is None:
            raise ValueError("EncoderModel.classify: built without n_classes")
        h = self.encode(idx, pad_mask)                                  # (B, T, C)
        if pad_mask is None:
            pooled = h.mean(dim=1)
        else:
            w = pad_mask.to(h.dtype)[..., None]
            pooled = (h * w).sum(dim=1) / w.sum(dim=1).clamp(min=1)     # (B, C)
        logits = self.classifier(pooled)
        if labels is not None:
            check_tensor("classify", "labels", labels, floating=False, dims=(1,))
            if labels.shape[0] != idx.shape[0] or labels.numel() and (
                    labels.min() < 0 or labels.max() >= logits.shape[-1]):
                raise ValueError(f"classify: labels must be ({idx.shape[0]},) ints in "
                                 f"[0, {logits.shape[-1]})")
        loss = None if labels is None else F.cross_entropy(logits, labels)
        return logits, loss


def _check_pad_mask(where: str, pad_mask, idx) -> None:
    if pad_mask is None:
        return
    check_tensor(where, "pad_mask", pad_mask)
    if pad_mask.dtype != torch.bool or pad_mask.shape != idx.shape:
        raise ValueError(f"{where}: pad_mask must be bool with the ids' shape "
                         f"{tuple(idx.shape)}, got {pad_mask.dtype} {tuple(pad_mask.shape)}")


def mlm_mask(idx, mask_id: int, vocab_size: int, prob: float = 0.15, generator=None,
             special_ids: tuple[int, ...] = ()):
    """BERT's masking: pick ``prob`` of the positions; of those 80% become [MASK], 10% a random
    token, 10% stay. Returns (inputs, targets) with targets = -100 where nothing is predicted.

    ``vocab_size`` is the range random replacements are drawn from (the ordinary tokens);
    ``mask_id`` may lie outside it, as an extra id appended after the vocabulary."""
    check_tensor("mlm_mask", "idx", idx, floating=False)
    vocab_size = check_int("mlm_mask", "vocab_size", vocab_size, low=1)
    mask_id = check_int("mlm_mask", "mask_id", mask_id, low=0)
    prob = check_float("mlm_mask", "prob", prob)
    if not 0.0 < prob < 1.0:
        raise ValueError(f"mlm_mask: prob must be in (0, 1), got {prob}")
    can = torch.ones_like(idx, dtype=torch.bool)
    for s in special_ids:
        can &= idx != s
    u = torch.rand(idx.shape, generator=generator)
    chosen = (u < prob) & can
    targets = torch.where(chosen, idx, torch.full_like(idx, -100))
    r = torch.rand(idx.shape, generator=generator)
    inputs = idx.clone()
    inputs[chosen & (r < 0.8)] = mask_id
    random_pos = chosen & (r >= 0.8) & (r < 0.9)
    inputs[random_pos] = torch.randint(0, vocab_size, idx.shape, generator=generator)[random_pos]
    return inputs, targets


class EncoderDecoder(nn.Module):
    """Encoder-decoder (T5-like): the decoder's blocks attend causally to themselves and fully
    to the encoder's output (cross-attention). One shared token embedding."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.emb = Embeddings(config)
        self.encoder = nn.ModuleList([Block(config) for _ in range(config.n_layer)])
        self.ln_enc = nn.LayerNorm(config.d_model)
        self.decoder = nn.ModuleList([Block(config, cross_attention=True)
                                      for _ in range(config.n_layer)])
        self.ln_f = nn.LayerNorm(config.d_model)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        _init_weights(self)

    def encode(self, src, src_pad_mask=None):
        _check_pad_mask("EncoderDecoder", src_pad_mask, src)
        mask = None if src_pad_mask is None else src_pad_mask[:, None, None, :]
        x = self.emb(src)
        for block in self.encoder:
            x = block(x, mask=mask)
        return self.ln_enc(x)                                         # (B, S, C)

    def decode(self, tgt, memory, src_pad_mask=None):
        mask = causal_mask(tgt.shape[1], device=tgt.device)
        cmask = None if src_pad_mask is None else src_pad_mask[:, None, None, :]
        x = self.emb(tgt)
        for block in self.decoder:
            x = block(x, mask=mask, context=memory, context_mask=cmask)
        return self.lm_head(self.ln_f(x))                             # (B, T, V)

    def forward(self, src, tgt, src_pad_mask=None, targets=None):
        logits = self.decode(tgt, self.encode(src, src_pad_mask), src_pad_mask)
        loss = None if targets is None else token_loss(logits, targets)
        return logits, loss

    @torch.no_grad()
    def generate(self, src, bos_id: int, eos_id: int, max_new_tokens: int,
                 src_pad_mask=None):
        """Greedy decoding; stops when every sequence has produced eos."""
        v = self.config.vocab_size
        bos_id = check_int("EncoderDecoder.generate", "bos_id", bos_id, low=0, high=v - 1)
        eos_id = check_int("EncoderDecoder.generate", "eos_id", eos_id, low=0, high=v - 1)
        max_new_tokens = check_int("EncoderDecoder.generate", "max_new_tokens", max_new_tokens,
                                   low=0, high=self.config.block_size - 1)
        memory = self.encode(src, src_pad_mask)
        out = torch.full((src.shape[0], 1), bos_id, dtype=torch.long, device=src.device)
        for _ in range(max_new_tokens):
            logits = self.decode(out, memory, src_pad_mask)
            nxt = logits[:, -1].argmax(dim=-1, keepdim=True)
            out = torch.cat([out, nxt], dim=1)
            if (out == eos_id).any(dim=1).all():
                break
        return out


def config_dict(cfg: GPTConfig) -> dict:
    return asdict(cfg)


# ------------------------------------------------- the shipped checkpoints (course_lib/weights)
# name -> family; a checkpoint's JSON also records its family (and n_classes for classifiers)
PRETRAINED = {"tiny-gpt": "gpt", "tiny-bert": "encoder", "tiny-t5": "encoder-decoder"}


def pretrained_files(name: str, weights_dir: Path | None = None) -> dict[str, Path]:
    if name not in PRETRAINED:
        raise ValueError(f"load_pretrained: unknown model {name!r}; available: "
                         f"{sorted(PRETRAINED)}")
    d = WEIGHTS_DIR if weights_dir is None else Path(weights_dir)
    return {"weights": d / f"{name}.safetensors", "meta": d / f"{name}.json",
            "tokenizer": d / f"{name}.tokenizer.json"}


def load_pretrained(name: str, weights_dir: str | Path | None = None) -> nn.Module:
    """Load a shipped checkpoint offline, after checking its record.

    Before anything is built: the JSON record has its keys, types and sane sizes, was not
    edited after training (``record_sha256``), its config builds exactly the tensor shapes in
    the safetensors header, and the weights and tokenizer files match their sha256. Any
    failure is a ValueError that says how to regenerate the checkpoint.

    The model comes back in eval mode with ``.tokenizer`` and ``.meta`` (how it was trained):
    a ``GPT`` for "tiny-gpt", an ``EncoderModel`` for "tiny-bert", an ``EncoderDecoder`` for
    "tiny-t5".
    """
    from safetensors.torch import load_file

    files = pretrained_files(name, weights_dir)
    regen = f"regenerate it with: python -m course_lib.train --preset {name}"
    if PRETRAINED[name] != "gpt":
        regen = f"regenerate it with: python -m course_lib.families --preset {name}"
    for kind, path in files.items():
        if not path.exists():
            raise ValueError(f"load_pretrained: {kind} file {path} is missing; {regen}")
    try:
        meta = json.loads(files["meta"].read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"load_pretrained: {files['meta']} is not JSON ({e}); {regen}") from None
    checkpoint.check_record_fields(meta, regen)
    if meta["family"] != PRETRAINED[name]:
        raise ValueError(f"load_pretrained: record family {meta['family']!r} is not "
                         f"{PRETRAINED[name]!r}; {regen}")
    try:
        config = GPTConfig.from_dict(meta["config"])
    except (TypeError, ValueError) as e:
        raise ValueError(f"load_pretrained: record config is invalid ({e}); {regen}") from None

    def build():
        if meta["family"] == "gpt":
            return GPT(config)
        if meta["family"] == "encoder":
            return EncoderModel(config, n_classes=meta.get("n_classes"))
        return EncoderDecoder(config)

    with torch.device("meta"):                     # shapes only: no memory, no init cost
        expected = {k: tuple(v.shape) for k, v in build().state_dict().items()}
    checkpoint.check_shapes(expected, files["weights"], regen)
    for kind, key in (("weights", "sha256"), ("tokenizer", "tokenizer_sha256")):
        actual = checkpoint.sha256_file(files[kind])
        if actual != meta[key]:
            raise ValueError(f"load_pretrained: {files[kind]} is corrupted (sha256 "
                             f"{actual[:12]}... != expected {meta[key][:12]}...); {regen}")
    tokenizer = load_tokenizer(files["tokenizer"])
    if tokenizer.vocab_size != config.vocab_size:
        raise ValueError(f"load_pretrained: tokenizer has {tokenizer.vocab_size} tokens, the "
                         f"config {config.vocab_size}; {regen}")
    model = build()
    model.load_state_dict(load_file(str(files["weights"])))
    model.eval()
    model.tokenizer = tokenizer
    model.meta = meta
    return model
