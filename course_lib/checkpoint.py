"""Checkpoint files: atomic writes, hashes, the safetensors header, and the check that a
checkpoint's JSON record agrees with its weights and tokenizer before anything is built.

Taught in book/01_transformer.md (the model organism ships as safetensors + a JSON record);
``models.load_pretrained`` calls ``check_record_fields`` and ``check_shapes``. Hashes and
atomic writes come from ``course_lib.files``; the config class from ``course_lib.config``.
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
import struct
from pathlib import Path

import torch

from .config import GPTConfig
from .files import atomic_write, atomic_write_text, sha256_file  # noqa: F401  (re-exported)

# Bounds a sane course checkpoint stays within (a record outside them is corrupt or hostile:
# vocab_size 10**12 would ask for terabytes before any hash could be checked).
LIMITS = {"vocab_size": 1 << 20, "block_size": 1 << 16, "n_layer": 256, "n_heads": 1024,
          "d_model": 1 << 15, "n_kv_heads": 1024, "d_ff": 1 << 17, "n_classes": 1 << 16}
FAMILIES = ("gpt", "encoder", "encoder-decoder")
MAX_HEADER_BYTES = 100 << 20   # a safetensors JSON header; ours are a few KB


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


# ------------------------------------------------------- writing and comparing a training run
def save_checkpoint(model: torch.nn.Module, path: str | Path) -> str:
    """Write the state dict as safetensors (atomically: a crash leaves the old file); return
    its sha256."""
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    atomic_write(path, lambda tmp: save_file(state, str(tmp)))
    return sha256_file(Path(path))


def load_checkpoint(model: torch.nn.Module, path: str | Path) -> torch.nn.Module:
    from safetensors.torch import load_file

    path = Path(path)
    if not path.exists():
        raise ValueError(f"load_checkpoint: no checkpoint at {path}")
    model.load_state_dict(load_file(str(path)))
    return model


def cpu_capability() -> str:
    """The CPU kernel set torch dispatches to (AVX512, AVX2, DEFAULT, SVE256, ...); set by
    the hardware or the ATEN_CPU_CAPABILITY environment variable."""
    return torch.backends.cpu.get_cpu_capability()


def weight_distance(weights: str | Path, ref_weights: str | Path) -> float:
    """Relative L2 distance ||w - w_ref|| / ||w_ref|| over every tensor of two safetensors
    files with the same names and shapes (float64 sums)."""
    from safetensors.torch import load_file

    a, b = load_file(str(weights)), load_file(str(ref_weights))
    if a.keys() != b.keys() or any(a[k].shape != b[k].shape for k in a):
        raise ValueError(f"weight_distance: {weights} and {ref_weights} hold different tensors")
    diff = sum(float((a[k].double() - b[k].double()).pow(2).sum()) for k in a)
    norm = sum(float(b[k].double().pow(2).sum()) for k in b)
    return math.sqrt(diff / norm)


# How a regeneration on another machine is judged. Bit-for-bit sums need the same CPU, kernel
# set and torch build: matrix-multiply kernels are chosen per CPU model, not only per
# instruction set. Training then amplifies last-bit differences: tiny-gpt retrained here
# (AMD EPYC, torch 2.13) with the AVX512 or the generic DEFAULT kernels lands 26% / 28%
# (relative L2) from the shipped weights, and 3.1% / 5.0% apart in validation loss, so weights
# cannot be compared. Its first 50 per-step losses still agree to 1.7e-7 / 7.8e-7 (relative),
# tiny-t5's first 5 recorded ones to 3e-7. The smallest real change tried, weight decay
# 0.1 -> 0.09, moves micro-gpt's 30 losses by 1.5e-4 (by 6.9e-4 on a 300-step schedule).
EARLY_STEPS = 50     # per-step training losses compared, before the paths diverge
EARLY_RTOL = 1e-5    # 13x the kernel noise seen, 15x below the smallest change tried
FINAL_RTOL = 0.15    # the final validation loss: a sanity bound, not a fingerprint
SETTINGS = ("steps", "batch_size", "lr", "seed", "train_tokens", "tokenizer_sha256")


def cpu_model() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else ``platform.processor()``."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


# What decides whether a float result can be reproduced bit for bit: the CPU model (its
# matrix-multiply kernels are chosen per model, not only per instruction set), the
# architecture, the kernel set torch dispatches to, and the torch build.
MACHINE_KEYS = ("cpu_model", "cpu_arch", "cpu_capability", "torch_version")


def this_machine() -> dict[str, str]:
    """This machine's values of ``MACHINE_KEYS``, as ``save_run`` writes them into a record."""
    return {"cpu_model": cpu_model(), "cpu_arch": platform.machine(),
            "cpu_capability": cpu_capability(), "torch_version": torch.__version__}


def same_machine(record: dict, other: dict | None = None) -> bool:
    """Can a float result of ``record`` be expected bit for bit on ``other`` (default: here)?

    Only when every one of ``MACHINE_KEYS`` is recorded and equal; a record that lacks one
    (made before the fields were written) never demands bits. Everywhere else, compare what
    holds on every machine: losses within a tolerance, a final metric within a band.
    """
    other = this_machine() if other is None else other
    return all(record.get(k) is not None and record.get(k) == other.get(k)
               for k in MACHINE_KEYS)


def _early_losses(meta: dict) -> list[float]:
    history = meta.get("history") or {}
    for key, step_key in (("train_loss", "step"), ("mlm_loss", "mlm_step")):
        if key in history:
            steps = history.get(step_key, range(len(history[key])))
            return [x for s, x in zip(steps, history[key]) if s < EARLY_STEPS]
    return []


def compare_to_record(meta: dict, weights: str | Path, ref_meta: dict,
                      ref_weights: str | Path | None) -> dict:
    """Does a fresh run (``meta`` + ``weights``) reproduce a record (``ref_meta``)?

    Bit for bit when the CPU model, architecture, kernel set and torch version all match
    the record's (``exact_required``; a record lacking one never requires it). Otherwise:
    the same settings, config and tokenizer, the per-step training losses of the first
    ``EARLY_STEPS`` steps within ``EARLY_RTOL`` and the final validation loss within
    ``FINAL_RTOL`` (both relative). Returns the figures (``weight_distance`` for
    information, None without ``ref_weights``) and ``ok``.
    """
    same_kernels = same_machine(ref_meta, meta)
    exact = meta["sha256"] == ref_meta["sha256"]
    differ = [k for k in SETTINGS if k in ref_meta and meta.get(k) != ref_meta[k]]
    if GPTConfig.from_dict(meta["config"]) != GPTConfig.from_dict(ref_meta["config"]):
        differ.append("config")
    mine, theirs = _early_losses(meta), _early_losses(ref_meta)
    early = math.inf if len(mine) != len(theirs) or not theirs else \
        max(abs(a - b) / abs(b) for a, b in zip(mine, theirs))
    loss_key = next((k for k in ("val_loss", "mlm_val_loss") if k in ref_meta), None)
    final = 0.0 if loss_key is None else \
        abs(meta[loss_key] - ref_meta[loss_key]) / abs(ref_meta[loss_key])
    result = {"exact": exact, "exact_required": same_kernels, "settings_differ": differ,
              "early_loss_distance": early, "final_loss_distance": final,
              "weight_distance": 0.0 if exact else None if ref_weights is None
              else weight_distance(weights, ref_weights)}
    if same_kernels:
        result["ok"] = exact
    else:
        result["ok"] = not differ and early <= EARLY_RTOL and final <= FINAL_RTOL
    return result


def save_run(out_dir: str | Path | None, name: str, model: torch.nn.Module, tok,
             record: dict, how_made: str, indent: int = 2) -> dict:
    """Write ``NAME.safetensors``, ``NAME.tokenizer.json`` and ``NAME.json`` (``record`` plus
    sha256 of weights and tokenizer, parameter count, torch version, CPU capability, how it
    was made, and ``record_sha256`` over what ``load_pretrained`` builds from) into ``out_dir``
    (default ``./weights``), each file atomically; return the record."""
    out_dir = Path("weights") if out_dir is None else Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sha = save_checkpoint(model, out_dir / f"{name}.safetensors")
    tok.save(out_dir / f"{name}.tokenizer.json")
    tok_sha = sha256_file(out_dir / f"{name}.tokenizer.json")
    record = dict(record)
    history = record.pop("history", None)
    head = {k: record.pop(k) for k in ("name", "family", "config") if k in record}
    meta = {**head, "sha256": sha, "tokenizer_sha256": tok_sha,
            "n_params": sum(p.numel() for p in model.parameters()),
            **record, **this_machine()}
    if history is not None:
        meta["history"] = history
    meta["how_made"] = how_made
    meta["record_sha256"] = record_checksum(meta)
    atomic_write_text(out_dir / f"{name}.json", json.dumps(meta, indent=indent) + "\n")
    return meta
