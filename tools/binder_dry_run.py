"""A Binder dry run: build the environment from .binder/ alone, start a Jupyter server, and
execute every chapter through it, recording each chapter's peak memory against Binder's limit.

    python tools/binder_dry_run.py [--env /tmp/binder-env] [--only 03] [--reuse]

1. Creates a fresh virtual environment and installs `.binder/requirements.txt` into it, as
   repo2docker does (CPU-only torch from PyTorch's index; where that index is unreachable pip
   falls back to any local copy of the same CPU build), then runs `.binder/postBuild` with
   Jupyter's settings redirected into the environment.
2. Starts `jupyter server` from that environment on 127.0.0.1, with the chapters' folder as
   its root, and checks that JupyterLab answers.
3. For each chapter in `_toc.yml`: starts a kernel through the server's REST API, sends every
   code cell over the kernel's websocket, and samples every 50 ms the memory (PSS) of the
   server, the kernel and the kernel's children together, as Binder's container limit counts
   them (`peak_mb`; `kernel_peak_mb` is the kernel and its children alone). A cell that errors
   fails the chapter.
Binder guarantees 1 GB and kills a container at 2 GB; the course's budget is 900 MB for server
and kernel together, a margin under the guarantee for a learner on a busy node. Writes
bench/binder.json and prints a table; exits 1 if a chapter fails or passes 900 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
from run_notebooks import _kernel_tree, _sum_memory, toc_notebooks  # noqa: E402

BINDER_GUARANTEE_MB = 1024  # what Binder promises a container; it kills at 2048 MB
BUDGET_MB = 900            # the course's budget: server + kernel + the kernel's children
MB = 1024 * 1024


def build_env(env: Path) -> float:
    start = time.time()
    if env.exists():
        shutil.rmtree(env)
    subprocess.run([sys.executable, "-m", "venv", str(env)], check=True)
    pip = [str(env / "bin" / "python"), "-m", "pip"]
    subprocess.run([*pip, "install", "--quiet", "--upgrade", "pip"], check=True)
    # Where PyTorch's index cannot be reached, don't retry it for every package (pip then uses
    # any other index it is configured with, as it would on a mirror).
    pip_env = dict(os.environ, PIP_RETRIES="0", PIP_TIMEOUT="10")
    subprocess.run([*pip, "install", "--quiet", "-r", ".binder/requirements.txt"], check=True,
                   cwd=REPO, env=pip_env)
    settings = env / "etc" / "jupyter-settings"
    post_env = dict(os.environ, PATH=f"{env / 'bin'}{os.pathsep}{os.environ['PATH']}",
                    JUPYTER_CONFIG_DIR=str(settings), JUPYTERLAB_SETTINGS_DIR=str(settings))
    subprocess.run(["bash", ".binder/postBuild"], check=True, cwd=REPO, env=post_env)
    return time.time() - start


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, env: Path):
        self.port, self.token = _free_port(), secrets.token_hex(16)
        settings = env / "etc" / "jupyter-settings"
        server_env = dict(os.environ, JUPYTER_CONFIG_DIR=str(settings),
                          JUPYTERLAB_SETTINGS_DIR=str(settings))
        self.proc = subprocess.Popen(
            [str(env / "bin" / "jupyter"), "server", "--no-browser", "--ip=127.0.0.1",
             f"--port={self.port}", f"--IdentityProvider.token={self.token}",
             f"--ServerApp.root_dir={REPO / 'book'}",
             *(["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else [])],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=server_env)
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                self.get("/api/status")
                return
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError("the Jupyter server did not start within 120 s")

    def _url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def request(self, method: str, path: str, body: dict | None = None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self._url(path), data=data, method=method, headers={
            "Authorization": f"token {self.token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as resp:
            raw = resp.read()
            return resp.status, (json.loads(raw) if raw and resp.headers.get_content_type()
                                 == "application/json" else raw)

    def get(self, path: str):
        return self.request("GET", path)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _message(session: str, code: str) -> dict:
    msg_id = uuid.uuid4().hex
    return {"header": {"msg_id": msg_id, "msg_type": "execute_request", "session": session,
                       "username": "dry-run", "version": "5.3"},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": True,
                        "user_expressions": {}, "allow_stdin": False, "stop_on_error": True}}


def run_chapter(server: Server, notebook: Path, cell_timeout: float = 600) -> dict:
    import jupytext
    import websocket

    nb = jupytext.read(notebook)
    cells = [c.source for c in nb.cells if c.cell_type == "code"]
    _, kernel = server.request("POST", "/api/kernels", {"name": "python3"})
    kid = kernel["id"]
    peak, kernel_peak, stop = [0], [0], threading.Event()
    cell, peak_cell = [0], [0]   # the code cell running now, and the one that set the peak
    server_proc = psutil.Process(server.proc.pid)

    def sample():
        root = None
        while not stop.is_set():
            if root is None:
                for p in psutil.process_iter(["cmdline"]):
                    if any(kid in part for part in (p.info["cmdline"] or [])):
                        root = p
                        break
            if root is not None:
                try:
                    kernel = _sum_memory([root, *_kernel_tree(root)], "pss")
                    kernel_peak[0] = max(kernel_peak[0], kernel)
                    # the server itself, with the kernel tree: what the container holds
                    total = kernel + _sum_memory([server_proc], "pss")
                    if total > peak[0]:
                        peak[0], peak_cell[0] = total, cell[0]
                except psutil.Error:
                    pass
            stop.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start, error = time.time(), None
    ws = websocket.create_connection(
        f"ws://127.0.0.1:{server.port}/api/kernels/{kid}/channels?token={server.token}",
        timeout=cell_timeout)
    session = uuid.uuid4().hex
    try:
        for i, code in enumerate(cells):
            cell[0] = i
            msg = _message(session, code)
            ws.send(json.dumps(msg))
            while True:
                reply = json.loads(ws.recv())
                if reply.get("parent_header", {}).get("msg_id") != msg["header"]["msg_id"]:
                    continue
                kind = reply["header"]["msg_type"]
                if kind == "error":
                    error = f"cell {i}: {reply['content']['ename']}: {reply['content']['evalue']}"
                if kind == "execute_reply":
                    break
            if error:
                break
    finally:
        ws.close()
        wall = time.time() - start
        stop.set()
        sampler.join()
        server.request("DELETE", f"/api/kernels/{kid}")
    return {"notebook": str(notebook.relative_to(REPO)), "cells": len(cells),
            "wall_s": round(wall, 1), "peak_mb": round(peak[0] / MB),
            "kernel_peak_mb": round(kernel_peak[0] / MB), "peak_cell": peak_cell[0],
            "load_1m": round(os.getloadavg()[0], 2),   # above the core count: a shared CPU
            "within_budget": peak[0] / MB <= BUDGET_MB, "error": error}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", type=Path, default=Path("/tmp/binder-dry-run-env"))
    parser.add_argument("--only", default="", help="run chapters whose path contains this")
    parser.add_argument("--reuse", action="store_true", help="reuse an existing --env")
    args = parser.parse_args(argv)
    install_s = None
    if not (args.reuse and (args.env / "bin" / "jupyter").exists()):
        install_s = build_env(args.env)
        print(f"environment from .binder/ built in {install_s:.0f} s")
    server = Server(args.env)
    try:
        status, _ = server.get("/lab")
        print(f"Jupyter server up on 127.0.0.1:{server.port}; /lab answers {status}")
        results = [run_chapter(server, nb) for nb in toc_notebooks() if args.only in str(nb)]
    finally:
        server.stop()
    torch_version = subprocess.run(
        [str(args.env / "bin" / "python"), "-c", "import torch; print(torch.__version__)"],
        capture_output=True, text=True).stdout.strip()
    print(f"\n{'chapter':<28}{'cells':>6}{'wall s':>8}{'peak MB':>9}{'kernel MB':>11}"
          f"{'at cell':>9}  under {BUDGET_MB} MB")
    for r in results:
        print(f"{Path(r['notebook']).name:<28}{r['cells']:>6}{r['wall_s']:>8}{r['peak_mb']:>9}"
              f"{r['kernel_peak_mb']:>11}{r['peak_cell']:>9}  "
              f"{'yes' if r['within_budget'] else 'NO'}"
              + (f"  FAILED {r['error']}" if r["error"] else ""))
    print("peak MB: PSS of the server, the kernel and its children together; kernel MB: the "
          "kernel and its children alone; at cell: the code cell (from 0) running at the peak")
    out = {"date": time.strftime("%Y-%m-%d"), "torch": torch_version, "install_s": install_s,
           "budget_mb": BUDGET_MB, "binder_guarantee_mb": BINDER_GUARANTEE_MB,
           "memory_measure": "peak_mb = peak PSS of the Jupyter server, the kernel and the "
           "kernel's children together, sampled every 50 ms; kernel_peak_mb = the kernel and "
           "its children alone; peak_cell = the code cell (from 0) running at the peak",
           "chapters": results}
    if not args.only:
        (REPO / "bench" / "binder.json").write_text(json.dumps(out, indent=2) + "\n")
    bad = [r for r in results if r["error"] or not r["within_budget"]]
    return 1 if bad or not results else 0


if __name__ == "__main__":
    sys.exit(main())
