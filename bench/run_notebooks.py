"""Run every chapter in a fresh process and check it against the course's budget.

    python bench/run_notebooks.py                 # all notebooks in _toc.yml, then bench/bench_*.py
    python bench/run_notebooks.py --only 03       # notebooks whose path contains "03"
    python bench/run_notebooks.py --no-fail       # report budget overruns without failing

Each notebook is read with jupytext and executed with nbclient by a separate driver process
(`--_driver`), with the kernel running in book/, so nothing is shared or warm between
notebooks. While it runs, this process samples every 50 ms the memory of the kernel and
everything the kernel started (worker processes of torch.distributed, for example), summed
over those processes; the peak of that sum is the notebook's memory (`peak_mb`, checked
against the budget). It is measured as PSS (proportional set size: a page shared by k
processes counts 1/k in each), so the sum counts every page once, as a container's memory
limit does. `peak_rss_mb` is the same sum of RSS, which counts shared pages (torch's
libraries in spawned workers) once per process and so overstates. Wall time is the driver's
whole life: interpreter start, kernel start and every cell; `exec_s` ("kernel s" in the
table) is kernel start plus cells, as timed by the driver.

Results go to bench/notebooks.json (machine, budget, one entry per notebook, kernel
benchmarks) and a table on the terminal. The exit status is non-zero if a notebook fails, a
kernel benchmark fails, or (unless --no-fail) a notebook exceeds the budget of 60 s and 900 MB
(the course's budget on 2 cores: Binder guarantees 1 GB for kernel and server together, and
tools/binder_dry_run.py checks the same 900 MB through a Jupyter server).

PSS splits a page among every process that maps it, also processes outside the notebook's
tree: while another process on the machine runs the same torch build, part of torch's
libraries is charged to it, and peak_mb reads lower than on a machine of its own.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
import conftest  # noqa: E402  (the toc reader the tests use)

BENCH = REPO / "bench"
MB = 1024 * 1024
SAMPLE_EVERY_S = 0.05
# Proportional set size: each shared page split among the processes that map it (Linux).
HAS_PSS = hasattr(psutil.Process().memory_full_info(), "pss")
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


# ------------------------------------------------------------------------------- helpers
def toc_notebooks() -> list[Path]:
    """The files listed in _toc.yml that are jupytext notebooks (have a kernelspec): the same
    list the tests run, read by the same code in conftest.py."""
    return [p for p in conftest.toc_notebooks() if p.exists() and conftest.is_text_notebook(p)]


def machine_info() -> dict:
    def version(name):
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return None

    cpu_model = platform.processor() or None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                                capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return {
        "date_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "cpu_model": cpu_model,
        "logical_cores": os.cpu_count(),
        "usable_cores": usable,
        "physical_cores": psutil.cpu_count(logical=False),
        "memory_gb": round(psutil.virtual_memory().total / 1024**3, 1),
        "python": platform.python_version(),
        "torch": version("torch"),
        "numpy": version("numpy"),
        "jupyter_book": version("jupyter-book"),
        "git_commit": commit or None,
    }


def _kernel_tree(root: psutil.Process) -> list[psutil.Process]:
    """The processes the driver started: the kernel and everything below it."""
    try:
        return root.children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _sum_memory(procs: list[psutil.Process], field: str) -> int:
    """Sum of `field` ("rss" or "pss") over `procs`, skipping any that have exited."""
    total = 0
    for proc in procs:
        try:
            info = proc.memory_info() if field == "rss" else proc.memory_full_info()
            total += getattr(info, field)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            pass  # exited between listing and sampling
    return total


# -------------------------------------------------------------------------------- driver
def drive(notebook: Path, result_file: Path, cell_timeout: int) -> int:
    """Runs in the fresh process: execute one notebook, write a small JSON result."""
    import jupytext
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError

    nb = jupytext.read(notebook)
    n_code = sum(c.cell_type == "code" for c in nb.cells)
    client = NotebookClient(nb, timeout=cell_timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(notebook.parent)}})
    result = {"cells": n_code, "status": "ok", "error": None}
    start = time.perf_counter()
    try:
        client.execute()
    except (CellExecutionError, CellTimeoutError) as err:
        result["status"] = "error"
        lines = [ln for ln in ANSI_ESCAPE.sub("", str(err)).splitlines() if ln.strip()]
        result["error"] = lines[-1][:300] if lines else type(err).__name__
    result["exec_s"] = round(time.perf_counter() - start, 2)
    result_file.write_text(json.dumps(result), encoding="utf-8")
    return 0 if result["status"] == "ok" else 1


# --------------------------------------------------------------------------------- parent
def _rel(path: Path) -> str:
    return Path(os.path.relpath(path.resolve(), REPO)).as_posix()


def measure(notebook: Path, timeout_s: int, cell_timeout: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        result_file = Path(tmp) / "result.json"
        command = [sys.executable, str(Path(__file__).resolve()), "--_driver", str(notebook),
                   "--_result", str(result_file), "--cell-timeout", str(cell_timeout)]
        start = time.perf_counter()
        proc = subprocess.Popen(command, cwd=notebook.parent, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        ps = psutil.Process(proc.pid)
        peak_rss = peak_pss = 0
        status = None
        while proc.poll() is None:
            procs = _kernel_tree(ps)
            rss = _sum_memory(procs, "rss")
            peak_rss = max(peak_rss, rss)
            # PSS <= RSS, so PSS can only set a new peak when RSS is above the PSS peak;
            # reading it (smaps_rollup, ~3 ms a process) only then keeps sampling cheap.
            if HAS_PSS and rss > peak_pss:
                peak_pss = max(peak_pss, _sum_memory(procs, "pss"))
            if time.perf_counter() - start > timeout_s:
                for child in ps.children(recursive=True):
                    child.kill()
                proc.kill()
                status = "timeout"
                break
            time.sleep(SAMPLE_EVERY_S)
        output, _ = proc.communicate()
        wall = time.perf_counter() - start
        entry = {
            "path": _rel(notebook),
            "wall_s": round(wall, 2),
            "exec_s": None,
            "peak_mb": round((peak_pss if HAS_PSS else peak_rss) / MB, 1),
            "peak_pss_mb": round(peak_pss / MB, 1) if HAS_PSS else None,
            "peak_rss_mb": round(peak_rss / MB, 1),
            "cells": None,
            "status": status or "ok",
            "error": None,
        }
        if result_file.exists():
            entry.update(json.loads(result_file.read_text(encoding="utf-8")))
        elif status is None:
            entry["status"] = "error"
            tail = [ln for ln in output.splitlines() if ln.strip()]
            entry["error"] = tail[-1][:300] if tail else f"driver exited {proc.returncode}"
        if status == "timeout":
            entry["status"], entry["error"] = "timeout", f"killed after {timeout_s} s"
        return entry


def run_kernel_benchmarks(timeout_s: int) -> list[dict]:
    results = []
    for script in sorted(BENCH.glob("bench_*.py")):
        print(f"\n== {script.relative_to(REPO)}", flush=True)
        start = time.perf_counter()
        try:
            proc = subprocess.run([sys.executable, str(script)], cwd=REPO, timeout=timeout_s)
            code = proc.returncode
        except subprocess.TimeoutExpired:
            code = None
        results.append({"script": script.relative_to(REPO).as_posix(),
                        "wall_s": round(time.perf_counter() - start, 2),
                        "returncode": code,
                        "status": "ok" if code == 0 else ("timeout" if code is None else "error")})
    return results


def print_table(entries: list[dict], max_wall: float, max_mb: float) -> None:
    name_width = max([len(e["path"]) for e in entries] + [8])
    print(f"\n{'notebook':<{name_width}}  {'wall s':>7}  {'kernel s':>8}  {'peak MB':>8}  "
          f"{'RSS MB':>7}  {'cells':>5}  status")
    print("-" * (name_width + 56))
    for e in entries:
        flags = [e["status"]] + e["over_budget"]
        exec_s = "-" if e["exec_s"] is None else f"{e['exec_s']:.1f}"
        cells = "-" if e["cells"] is None else str(e["cells"])
        print(f"{e['path']:<{name_width}}  {e['wall_s']:>7.1f}  {exec_s:>8}  "
              f"{e['peak_mb']:>8.0f}  {e['peak_rss_mb']:>7.0f}  {cells:>5}  {', '.join(flags)}")
        if e["error"]:
            print(f"{'':<{name_width}}  -> {e['error']}")
    measure = "PSS" if HAS_PSS else "RSS"
    print(f"budget: {max_wall:g} s wall and {max_mb:g} MB peak per notebook; peak MB = "
          f"{measure} summed over the kernel and its child processes; RSS MB counts pages "
          "shared between them once per process")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", action="append", default=[],
                        help="run only notebooks whose path contains this text (repeatable)")
    parser.add_argument("--max-wall", type=float, default=60.0, help="seconds (default 60)")
    parser.add_argument("--max-mem-mb", type=float, default=900.0, help="MB (default 900)")
    parser.add_argument("--timeout", type=int, default=600,
                        help="kill a notebook (or kernel benchmark) after this many seconds")
    parser.add_argument("--cell-timeout", type=int, default=300)
    parser.add_argument("--no-fail", action="store_true",
                        help="report budget overruns but exit 0 for them")
    parser.add_argument("--no-kernels", action="store_true",
                        help="skip bench/bench_*.py kernel benchmarks")
    parser.add_argument("--output", type=Path, default=BENCH / "notebooks.json")
    parser.add_argument("--_driver", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--_result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args._driver:
        return drive(args._driver, args._result, args.cell_timeout)

    notebooks = toc_notebooks()
    if args.only:
        notebooks = [p for p in notebooks if any(s in p.as_posix() for s in args.only)]
    if not notebooks:
        print("no notebooks to run (check _toc.yml and --only)", file=sys.stderr)
        return 2

    info = machine_info()
    print(f"{len(notebooks)} notebooks on {info['cpu_model']} ({info['usable_cores']} usable "
          f"cores), torch {info['torch']}", flush=True)
    entries = []
    for notebook in notebooks:
        print(f"running {_rel(notebook)} ...", flush=True)
        entry = measure(notebook, args.timeout, args.cell_timeout)
        # the machine's 1-minute load average as the notebook ends: above the core count,
        # other work shared the CPU and wall_s reads high
        entry["load_1m"] = round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None
        entry["over_budget"] = []
        if entry["wall_s"] > args.max_wall:
            entry["over_budget"].append(f"OVER {args.max_wall:g} s")
        if entry["peak_mb"] > args.max_mem_mb:
            entry["over_budget"].append(f"OVER {args.max_mem_mb:g} MB")
        entries.append(entry)

    kernels = [] if args.no_kernels else run_kernel_benchmarks(args.timeout)

    # with --only, keep the other notebooks' last results
    previous = []
    if args.only and args.output.exists():
        ran = {e["path"] for e in entries}
        old = json.loads(args.output.read_text(encoding="utf-8")).get("notebooks", [])
        previous = [e for e in old if e["path"] not in ran]
    order = {_rel(p): i for i, p in enumerate(toc_notebooks())}
    all_entries = sorted(previous + entries, key=lambda e: order.get(e["path"], len(order)))
    report = {
        "machine": info,
        "budget": {"wall_s": args.max_wall, "peak_mb": args.max_mem_mb},
        "memory_measure": "peak_mb = peak of the PSS summed over the kernel and its child "
        "processes (shared pages counted once), sampled every 50 ms; peak_rss_mb = the same "
        "with RSS, which counts shared pages once per process"
        if HAS_PSS else "peak_mb = peak of the RSS summed over the kernel and its children",
        "notebooks": all_entries,
        "kernel_benchmarks": kernels,
    }
    args.output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")

    print_table(entries, args.max_wall, args.max_mem_mb)
    for k in kernels:
        print(f"{k['script']}: {k['status']} in {k['wall_s']:.1f} s")
    print(f"wrote {_rel(args.output)}")

    failed = [e for e in entries if e["status"] != "ok"] + [k for k in kernels
                                                            if k["status"] != "ok"]
    over = [e for e in entries if e["over_budget"]]
    if failed:
        print(f"FAILED: {len(failed)} notebook(s)/benchmark(s) did not run cleanly",
              file=sys.stderr)
    if over:
        print(f"{'WARNING' if args.no_fail else 'FAILED'}: {len(over)} notebook(s) over budget: "
              + ", ".join(e["path"] for e in over), file=sys.stderr)
    return 1 if failed or (over and not args.no_fail) else 0


if __name__ == "__main__":
    sys.exit(main())
