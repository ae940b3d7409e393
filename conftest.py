"""pytest plumbing for the course: notebooks as tests, and no network.

1. nbval over MyST notebooks. nbval only reads .ipynb; `JupytextNbFile` reads `book/*.md`
   through jupytext instead, so `pytest` (with `--nbval-lax` from pyproject.toml) runs every
   code cell of every chapter and a failing cell is a failing test named
   `book/NN_name.md::Cell k`, with the cell's source and traceback in the report. Inside this
   repository only the notebooks listed in `_toc.yml` are collected (plus any file named on
   the command line), so drafts, `_build/` copies and paired .ipynb files are never run twice.
   MyST cell tags work as in nbval: `raises-exception`, `nbval-skip`, `nbval-ignore-output`.

2. A network guard. `tests/netguard/course_netguard.py` blocks every non-loopback connection
   and every DNS lookup of a non-local name (its docstring lists what it patches) in the
   pytest process, and `tests/netguard` is prepended to PYTHONPATH so that its
   `sitecustomize.py` does the same in notebook kernels and in subprocesses.

Compare outputs with a reference run too (strict nbval; `--nbval-lax` must not be given,
so override addopts):
    pytest -o addopts="" --nbval --nb-ref-dir _build/jupyter_execute book/
"""

from __future__ import annotations

import os
import sys
from collections import defaultdict
from pathlib import Path

import jupytext
import nbformat
import pytest
import yaml
from nbval.plugin import IPyNbCell, IPyNbFile, find_comment_markers, find_metadata_tags

REPO = Path(__file__).resolve().parent
TOC = REPO / "_toc.yml"
NETGUARD_DIR = REPO / "tests" / "netguard"
TOC_KEY = pytest.StashKey[frozenset]()
# myst-nb's glue(..., display=False) emits outputs under these MIME types; the book build
# strips them from its executed copies, so strict comparison must not count them.
GLUE_MIME_TYPES = tuple(
    f"application/papermill.record/{mime}"
    for mime in ("text/plain", "text/html", "text/markdown", "text/latex", "image/png",
                 "image/jpeg", "image/svg+xml", "application/json")
)


# --------------------------------------------------------------------------- network guard
def _install_network_guard() -> None:
    if str(NETGUARD_DIR) not in sys.path:
        sys.path.insert(0, str(NETGUARD_DIR))
    import course_netguard

    course_netguard.install()
    parts = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if str(NETGUARD_DIR) not in parts:
        os.environ["PYTHONPATH"] = os.pathsep.join([str(NETGUARD_DIR), *parts])


# ------------------------------------------------------------------------ notebooks in toc
def toc_notebooks(toc_path: Path = TOC) -> list[Path]:
    """The .md files `_toc.yml` lists (root, chapters, sections), as absolute paths, in order."""
    if not toc_path.exists():
        return []
    toc = yaml.safe_load(toc_path.read_text(encoding="utf-8")) or {}
    found: list[Path] = []

    def walk(node):
        if isinstance(node, dict):
            for key in ("root", "file"):
                if isinstance(node.get(key), str):
                    path = (toc_path.parent / node[key]).resolve()
                    found.append(path if path.suffix else path.with_suffix(".md"))
            for value in node.values():
                if isinstance(value, list | dict):
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(toc)
    return found


def is_text_notebook(path: Path) -> bool:
    """A .md file with a jupytext/kernelspec header (intro.md and README.md are not)."""
    if path.suffix != ".md":
        return False
    with open(path, encoding="utf-8") as f:
        head = f.read(4096)
    return head.startswith("---") and "kernelspec:" in head


def _named_on_command_line(config, path: Path) -> bool:
    invocation = Path(config.invocation_params.dir)
    for arg in config.args:
        candidate = Path(arg.split("::", 1)[0])
        if not candidate.is_absolute():
            candidate = invocation / candidate
        if candidate.resolve() == path.resolve():
            return True
    return False


def _wanted(config, path: Path) -> bool:
    """Inside this repo: only _toc.yml entries (or files named explicitly). Elsewhere: all."""
    path = path.resolve()
    if not path.is_relative_to(REPO):
        return True
    if _named_on_command_line(config, path):
        return True
    return path in config.stash[TOC_KEY]


class JupytextNbFile(IPyNbFile):
    """nbval's notebook collector, with the notebook read through jupytext."""

    def _merge_reference(self, nb):
        ref_dir = self.config.getoption("--nb-ref-dir")
        if not ref_dir:
            return
        if not self.path.resolve().is_relative_to(self.config.rootpath):
            return  # a notebook outside the repository has no reference copy
        rel = self.path.resolve().relative_to(self.config.rootpath).with_suffix(".ipynb")
        ref_path = Path(ref_dir) / rel
        if not ref_path.is_absolute():
            ref_path = self.config.rootpath / ref_path
        if not ref_path.exists():
            return  # no reference: cells are only checked for exceptions
        ref = nbformat.read(ref_path, as_version=4)
        mine = [c for c in nb.cells if c.cell_type == "code"]
        theirs = [c for c in ref.cells if c.cell_type == "code"]
        if [c.source for c in mine] != [c.source for c in theirs]:
            raise pytest.UsageError(
                f"{ref_path} is stale: its code cells differ from {rel.with_suffix('.md')}; "
                "rebuild the book first"
            )
        for c, r in zip(mine, theirs, strict=True):
            c.outputs, c.execution_count = r.outputs, r.execution_count

    def collect(self):
        self.skip_compare = tuple(self.skip_compare) + GLUE_MIME_TYPES
        self.nb = jupytext.read(self.path)  # no outputs, execution_count=None
        self._merge_reference(self.nb)
        n = 0
        for cell in self.nb.cells:
            if cell.cell_type != "code":
                continue
            options = defaultdict(bool, find_metadata_tags(cell.metadata))
            options.update(dict(find_comment_markers(cell.source)))
            options.setdefault("check", self.compare_outputs)
            yield IPyNbCell.from_parent(
                self, name=f"Cell {n}", cell_num=n, cell=cell, options=options
            )
            n += 1


# --------------------------------------------------------------------------------- hooks
def pytest_addoption(parser):
    parser.addoption(
        "--nb-ref-dir",
        default=None,
        help="folder of executed .ipynb mirroring the .md tree (e.g. _build/jupyter_execute); "
        "their outputs become nbval's reference outputs (use with --nbval, not --nbval-lax)",
    )


@pytest.fixture(scope="module")
def one_thread():
    """Run a test module's torch code on one thread (restored afterwards)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def pytest_configure(config):
    _install_network_guard()
    config.stash[TOC_KEY] = frozenset(toc_notebooks())


def pytest_ignore_collect(collection_path, config):
    # nbval itself collects every .ipynb; inside the repo those are build products or
    # jupytext pairings of a .md that is already collected, so skip them unless named.
    path = Path(collection_path)
    if path.suffix == ".ipynb" and path.resolve().is_relative_to(REPO):
        if not _named_on_command_line(config, path):
            return True
    return None


def pytest_collect_file(file_path, parent):
    opt = parent.config.option
    if not (getattr(opt, "nbval", False) or getattr(opt, "nbval_lax", False)):
        return None
    if is_text_notebook(file_path) and _wanted(parent.config, file_path):
        return JupytextNbFile.from_parent(parent, path=file_path)
    return None
