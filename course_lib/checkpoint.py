"""Checkpoint files: atomic writes, hashes, the safetensors header, and the check that a
checkpoint's JSON record agrees with its weights and tokenizer before anything is built.

Taught in book/01_transformer.md (the model organism ships as safetensors + a JSON record);
``models.load_pretrained`` calls ``verify_record``.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import Callable
from pathlib import Path

# Bounds a sane course checkpoint stays within (a record outside them is corrupt or hostile:
# vocab_size 10**12 would ask for terabytes before any hash could be checked).
LIMITS = {"vocab_size": 1 << 20, "block_size": 1 << 16, "n_layer": 256, "n_heads": 1024,
          "d_model": 1 << 15, "n_kv_heads": 1024, "d_ff": 1 << 17, "n_classes": 1 << 16}
FAMILIES = ("gpt", "encoder", "encoder-decoder")
MAX_HEADER_BYTES = 100 << 20   # a safetensors JSON header; ours are a few KB


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary file in ``path``'s folder, flush it to disk, then
    rename it over ``path`` (``os.replace`` is atomic). If ``write`` fails or the process dies
    midway, ``path`` keeps its old content; the temporary file is removed on an exception."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; see ``atomic_write``."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def safetensors_header(path: str | Path) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Tensor name -> (dtype, shape) from a safetensors file's header, without reading the
    tensors. The format: 8 bytes little-endian header length, then that many bytes of JSON."""
    path = Path(path)
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) != 8:
            raise ValueError(f"{path} is too short to be a safetensors file")
        (n,) = struct.unpack("<Q", raw)
        if not 2 <= n <= MAX_HEADER_BYTES:
            raise ValueError(f"{path}: safetensors header length {n} is not plausible")
        try:
            header = json.loads(f.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"{path}: safetensors header is not JSON ({e})") from None
    if not isinstance(header, dict):
        raise ValueError(f"{path}: safetensors header is not a JSON object")
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(info, dict) or not isinstance(info.get("shape"), list):
            raise ValueError(f"{path}: tensor {name!r} has no shape in the header")
        out[name] = (info.get("dtype"), tuple(info["shape"]))
    return out


def record_checksum(meta: dict) -> str:
    """sha256 of the fields that decide what ``load_pretrained`` builds: family, config,
    class count, and the weights' and tokenizer's hashes. Editing any of them by hand (say
    ``n_head`` 4 -> 8, which no tensor shape reveals) without retraining breaks it."""
    keys = ("family", "config", "n_classes", "sha256", "tokenizer_sha256")
    core = {k: meta.get(k) for k in keys}
    return hashlib.sha256(json.dumps(core, sort_keys=True).encode("utf-8")).hexdigest()


def _is_sha(value) -> bool:
    return isinstance(value, str) and len(value) == 64 and all(
        c in "0123456789abcdef" for c in value)


def check_record_fields(meta, regen: str) -> None:
    """Required keys present and typed, sizes within ``LIMITS``; ValueError otherwise."""
    def fail(msg):
        raise ValueError(f"load_pretrained: record {msg}; {regen}")

    if not isinstance(meta, dict):
        fail(f"is a {type(meta).__name__}, not a JSON object")
    for key in ("sha256", "tokenizer_sha256", "record_sha256"):
        if key not in meta or meta[key] is None:
            fail(f"has no {key}")
        if not _is_sha(meta[key]):
            fail(f"{key} is not a 64-digit hex sha256: {meta[key]!r}")
    if meta.get("family") not in FAMILIES:
        fail(f"family must be one of {FAMILIES}, got {meta.get('family')!r}")
    config = meta.get("config")
    if not isinstance(config, dict):
        fail("has no config object")
    sizes = dict(config)
    if meta.get("n_classes") is not None:
        sizes["n_classes"] = meta["n_classes"]
    for key, value in sizes.items():
        canonical = {"n_head": "n_heads", "n_kv_head": "n_kv_heads"}.get(key, key)
        if canonical not in LIMITS or value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            fail(f"{key} must be an int, got {value!r}")
        if not 1 <= value <= LIMITS[canonical]:
            fail(f"{key}={value} is outside [1, {LIMITS[canonical]}]")
    if record_checksum(meta) != meta["record_sha256"]:
        fail("was edited after training (record_sha256 does not match its family, config, "
             "n_classes, sha256 and tokenizer_sha256)")


def check_shapes(expected: dict[str, tuple[int, ...]], weights: Path, regen: str) -> None:
    """The safetensors header lists exactly the tensors the config builds, shape for shape."""
    found = safetensors_header(weights)
    missing, extra = sorted(expected.keys() - found.keys()), sorted(found.keys() - expected.keys())
    if missing or extra:
        raise ValueError(f"load_pretrained: {weights} does not match the record's config "
                         f"(missing {missing[:3]}, unexpected {extra[:3]}); {regen}")
    for name, shape in expected.items():
        if tuple(found[name][1]) != tuple(shape):
            raise ValueError(f"load_pretrained: {weights}: {name} has shape {found[name][1]}, "
                             f"the record's config gives {tuple(shape)}; {regen}")
