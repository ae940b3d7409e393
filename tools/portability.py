"""How much do the course's numbers move between CPUs? Measure it on one machine.

    python tools/portability.py                      # every config, chapters and probes
    python tools/portability.py --configs avx2-1t default-1t --notebooks book/02_memory.md

A learner's machine differs from the one that built the book in three ways that change float
results: the kernel set torch dispatches to (``ATEN_CPU_CAPABILITY``), the one MKL and oneDNN
use (``MKL_ENABLE_INSTRUCTIONS``, ``ONEDNN_MAX_CPU_ISA``), and the number of threads (which
splits sums differently). This script forces each combination this CPU can run, runs every
chapter of ``_toc.yml`` (nbclient, the kernel inheriting the environment; ``COURSE_THREADS``
sets the chapters' thread count) and the probes below (the quantities the tests hold to the
shipped records), and writes, for every glued number and every probe, its value under each
config and the largest difference between them to ``bench/portability.json``.

The tolerance policy in CONTRIBUTING.md sets every float tolerance from this file.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "portability.json"

# name -> environment. "native" lets every library pick the best kernels this CPU has.
KERNELS = {
    "native": {},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2",
             "ONEDNN_MAX_CPU_ISA": "AVX2"},
    "default": {"ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",
                "ONEDNN_MAX_CPU_ISA": "SSE41"},
}
# Every kernel set on one thread, and the native kernels on two (the thread count splits the
# sums differently). A run that also had the AVX2 and generic kernels on two threads found no
# larger spread in any number but timings.
CONFIGS = {f"{k}-{t}t": {**env, "OMP_NUM_THREADS": str(t), "MKL_NUM_THREADS": str(t),
                         "OPENBLAS_NUM_THREADS": str(t), "COURSE_THREADS": str(t)}
           for k, env in KERNELS.items() for t in (1, 2) if t == 1 or k == "native"}
# The first config once more: a number that differs between two identical runs is a timing
# (or other run-to-run noise), not a float result, and is reported apart.
REPEAT = ("native-1t", "native-1t-again")
CONFIGS[REPEAT[1]] = CONFIGS[REPEAT[0]]
TO_RECORD = "(max rel. to record)"   # a probe that is already a distance to a record
NUMBER = re.compile(r"^[-+]?(\d[\d,]*\.?\d*|\.\d+)([eE][-+]?\d+)?%?$")


def chapters() -> list[str]:
    toc = (ROOT / "_toc.yml").read_text(encoding="utf-8")
    files = re.findall(r"^\s*-\s*file:\s*(book/\S+)", toc, flags=re.M)
    return [f + ".md" for f in files if re.match(r"book/\d", f)]


def as_number(text: str) -> float | None:
    """'1,234', '-3.5e-07', '12.5%' -> a float (a percentage as a fraction); else None."""
    t = text.strip().strip("'\"")
    if not NUMBER.match(t):
        return None
    value = float(t.rstrip("%").replace(",", ""))
    return value / 100 if t.endswith("%") else value


# ------------------------------------------------------------------------------ probes
def probes() -> dict[str, float]:
    """The quantities the tests compare with the shipped records, computed here."""
    import torch

    from course_lib import distill, policy
    from course_lib import finetune as F
    from course_lib import train as T
    from course_lib.checkpoint import _early_losses
    from course_lib.finetune import REPLAY_STEPS

    torch.set_num_threads(int(os.environ.get("COURSE_THREADS", "1")))
    out: dict[str, float] = {}

    def rel(a, b):
        return max(abs(x - y) / abs(y) for x, y in zip(a, b, strict=True))

    teacher = distill.load_organism("pydoc-gpt")
    _, val = distill.organism_tokens(teacher.tokenizer)
    out["pydoc-gpt val loss"] = T.evaluate(teacher, val)
    for kind in ("hard", "soft"):
        student = distill.load_organism(f"pydoc-student-{kind}")
        out[f"pydoc-student-{kind} val loss"] = T.evaluate(student, val)

    record, _ = F.load_runs()
    _, entry = F.train_run("tenant_who-what")
    steps = REPLAY_STEPS
    out[f"ch5 tenant_who-what first {steps} losses (max rel. to record)"] = rel(
        entry["loss"][:steps], record["runs"]["tenant_who-what"]["loss"][:steps])
    out["ch5 tenant_who-what final loss"] = entry["final_loss"]

    for name in ("ch7-reader", "ch7-agent"):
        want = json.loads((ROOT / "course_lib" / "weights" / f"{name}.json").read_text())
        _, history = policy.train_policy(name, steps=3)
        out[f"{name} first 3 losses (max rel. to record)"] = rel(history.loss, want["loss"][:3])

    micro = json.loads((ROOT / "tests" / "data" / "micro_records.json").read_text())
    from course_lib import families
    for name, ref in micro.items():
        module = T if name == "micro-gpt" else families
        with tempfile.TemporaryDirectory() as d:
            got = module.run_preset(name, d, progress=False)
        out[f"{name} early losses (max rel. to record)"] = rel(_early_losses(got),
                                                              _early_losses(ref))
    return out


# --------------------------------------------------------------------------- notebooks
def glued(nb) -> dict[str, str]:
    """Every text value a notebook glued, by name (figures are left out)."""
    values = {}
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            meta = output.get("metadata", {}).get("scrapbook")
            if not meta:
                continue
            prefix = meta.get("mime_prefix", "")
            data = {k[len(prefix):]: v for k, v in output.get("data", {}).items()
                    if k.startswith(prefix)}
            if "text/plain" in data and not any(k.startswith("image/") for k in data):
                text = data["text/plain"]
                values[meta["name"]] = text if isinstance(text, str) else "".join(text)
    return values


def run_notebook(path: str) -> dict:
    import jupytext
    from nbclient import NotebookClient

    nb = jupytext.read(ROOT / path)
    client = NotebookClient(nb, timeout=600, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str((ROOT / path).parent)}})
    start = time.perf_counter()
    client.execute()
    errors = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and any(
        o.get("output_type") == "error" for o in c.get("outputs", []))
        and "raises-exception" not in c.get("metadata", {}).get("tags", [])]
    return {"seconds": round(time.perf_counter() - start, 1), "failed_cells": errors,
            "glued": glued(nb)}


def worker(config: str, notebooks: list[str], with_probes: bool) -> dict:
    import torch

    result = {"config": config, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
              "notebooks": {}, "probes": {}}
    if with_probes:
        result["probes"] = probes()
    for path in notebooks:
        print(f"[{config}] {path}", file=sys.stderr, flush=True)
        result["notebooks"][path] = run_notebook(path)
    return result


# ----------------------------------------------------------------------------- summary
def spread(values: dict[str, str | float]) -> dict:
    """Values by config -> the largest absolute and relative difference (or, for text,
    whether the configs agree)."""
    nums = {c: (v if isinstance(v, float) else as_number(str(v))) for c, v in values.items()}
    entry: dict = {"values": values}
    if values and all(n is not None for n in nums.values()):
        finite = [n for n in nums.values() if math.isfinite(n)]
        if len(finite) != len(nums):
            entry["agree"] = len({str(v) for v in values.values()}) == 1
            return entry
        lo, hi = min(finite), max(finite)
        scale = max(abs(n) for n in finite)
        entry["max_abs_diff"] = hi - lo
        entry["max_rel_diff"] = 0.0 if hi == lo else (hi - lo) / scale
    else:
        entry["agree"] = len({str(v) for v in values.values()}) == 1
    return entry


def summarise(runs: list[dict], machine: dict) -> dict:
    configs = [r["config"] for r in runs]
    report = {"machine": machine, "configs": {c: CONFIGS[c] for c in configs},
              "cpu_capability": {r["config"]: r["cpu_capability"] for r in runs},
              "probes": {}, "notebooks": {}}
    names = sorted({k for r in runs for k in r["probes"]})
    for name in names:
        values = {r["config"]: r["probes"][name] for r in runs if name in r["probes"]}
        if name.endswith(TO_RECORD):   # already a distance: its largest value is the spread
            report["probes"][name] = {"values": values, "max_rel_diff": max(values.values())}
        else:
            report["probes"][name] = spread(values)
    paths = sorted({p for r in runs for p in r["notebooks"]})
    for path in paths:
        seen = [r for r in runs if path in r["notebooks"]]
        keys = sorted({k for r in seen for k in r["notebooks"][path]["glued"]})
        report["notebooks"][path] = {
            "failed_cells": {r["config"]: r["notebooks"][path]["failed_cells"] for r in seen
                             if r["notebooks"][path]["failed_cells"]},
            "seconds": {r["config"]: r["notebooks"][path]["seconds"] for r in seen},
            "glued": {k: spread({r["config"]: r["notebooks"][path]["glued"][k] for r in seen
                                 if k in r["notebooks"][path]["glued"]}) for k in keys},
        }
    for nb in report["notebooks"].values():
        for entry in nb["glued"].values():
            values = entry["values"]
            if all(c in values for c in REPEAT):
                entry["run_to_run"] = values[REPEAT[0]] != values[REPEAT[1]]
    moved = [(e["max_rel_diff"], f"{p}::{k}") for p, nb in report["notebooks"].items()
             for k, e in nb["glued"].items() if e.get("max_rel_diff") and not e.get("run_to_run")]
    moved += [(e["max_rel_diff"], f"probe::{k}") for k, e in report["probes"].items()
              if e.get("max_rel_diff")]
    report["most_sensitive"] = [{"quantity": q, "max_rel_diff": d}
                                for d, q in sorted(moved, reverse=True)[:25]]
    report["text_that_differs"] = [f"{p}::{k}" for p, nb in report["notebooks"].items()
                                   for k, e in nb["glued"].items() if e.get("agree") is False]
    report["run_to_run"] = [f"{p}::{k}" for p, nb in report["notebooks"].items()
                            for k, e in nb["glued"].items() if e.get("run_to_run")]
    return report


def machine_info() -> dict:
    import torch

    from course_lib.checkpoint import cpu_model

    return {"date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "cpu_model": cpu_model(), "cpu_arch": platform.machine(),
            "native_cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "torch": torch.__version__, "python": platform.python_version(),
            "logical_cores": os.cpu_count()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", nargs="+", choices=sorted(CONFIGS), default=list(CONFIGS))
    parser.add_argument("--notebooks", nargs="*", default=None,
                        help="default: every chapter in _toc.yml; none: probes only")
    parser.add_argument("--no-probes", action="store_true")
    parser.add_argument("--out", default=str(OUT))
    parser.add_argument("--merge", action="store_true",
                        help="keep the configs and notebooks of --out that this run does not redo")
    parser.add_argument("--jobs", type=int, default=1,
                        help="one-thread configs run this many at a time (default 1; timings "
                             "then share the cores, float results do not care)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    notebooks = chapters() if args.notebooks is None else args.notebooks

    if args.worker:
        json.dump(worker(args.worker, notebooks, not args.no_probes), sys.stdout)
        return 0

    out = Path(args.out)
    raw_path = out.with_suffix(".raw.json")   # every config's values, for --merge
    runs = {}
    if args.merge and raw_path.exists():
        runs = {r["config"]: r for r in json.loads(raw_path.read_text())}
    # One-thread configs run two at a time (one core each); the others alone.
    batches, pending = [], []
    for config in args.configs:
        if CONFIGS[config]["COURSE_THREADS"] == "1" and args.jobs > 1:
            pending.append(config)
            if len(pending) == args.jobs:
                batches.append(pending)
                pending = []
        else:
            batches.append([config])
    if pending:
        batches.append(pending)
    for batch in batches:
        started = {}
        for config in batch:
            env = {k: v for k, v in os.environ.items() if k not in CONFIGS[config]}
            env.update(CONFIGS[config])
            cmd = [sys.executable, __file__, "--worker", config, "--notebooks", *notebooks]
            if args.no_probes:
                cmd.append("--no-probes")
            started[config] = (time.perf_counter(), subprocess.Popen(
                cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                text=True))
        for config, (start, proc) in started.items():
            stdout, stderr = proc.communicate()
            if proc.returncode != 0:
                print(stderr[-3000:], file=sys.stderr)
                print(f"{config}: the worker failed (exit {proc.returncode})", file=sys.stderr)
                return 1
            new = json.loads(stdout)
            old = runs.get(config, {"notebooks": {}, "probes": {}})
            new["notebooks"] = {**old["notebooks"], **new["notebooks"]}
            new["probes"] = new["probes"] or old["probes"]
            runs[config] = new
            print(f"{config}: {new['cpu_capability']}, {time.perf_counter() - start:.0f} s",
                  file=sys.stderr)
        _write(raw_path, list(runs.values()))
    report = summarise(list(runs.values()), machine_info())
    _write(out, report)
    for row in report["most_sensitive"][:10]:
        print(f"{row['max_rel_diff']:9.2e}  {row['quantity']}")
    failed = {p: nb["failed_cells"] for p, nb in report["notebooks"].items() if nb["failed_cells"]}
    if failed:
        print(f"cells that failed under some config: {failed}")
    return 1 if failed else 0


def _write(path: Path, obj) -> None:
    sys.path.insert(0, str(ROOT))
    from course_lib.checkpoint import atomic_write_text

    atomic_write_text(path, json.dumps(obj, indent=1, sort_keys=False) + "\n")


if __name__ == "__main__":
    sys.exit(main())
