"""The shipped checkpoints: ``load_pretrained(name)`` checks a checkpoint's record against its
files before it builds anything, then loads it offline.

Taught in book/01_transformer.md; ``models.load_pretrained`` is the same function.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn as nn

from . import checkpoint
from .models import GPT, WEIGHTS_DIR, EncoderDecoder, EncoderModel, GPTConfig

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

    from .tokenizer import load_tokenizer

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
