"""The book never shows numbers from old code: an edit to the package re-executes chapters.

A tiny Jupyter Book whose one chapter prints a constant from a tiny package is built, the
constant is edited, and the book is built again: without tools/book_cache.py the cached,
stale output stays; with it the chapter re-runs and shows the new value.
"""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tools"))
import book_cache  # noqa: E402

CHAPTER = """---
jupytext:
  text_representation: {extension: .md, format_name: myst}
kernelspec: {display_name: Python 3, language: python, name: python3}
---
# Chapter

```{code-cell} ipython3
import tinypkg
print("VALUE", tinypkg.VALUE)
```
"""


def _make_book(root: Path) -> None:
    (root / "tinypkg").mkdir()
    (root / "tinypkg" / "__init__.py").write_text("VALUE = 111\n")
    (root / "_config.yml").write_text(
        "title: t\nexecute:\n  execute_notebooks: cache\n  run_in_temp: false\n"
        "only_build_toc_files: true\n")
    (root / "_toc.yml").write_text("format: jb-book\nroot: chapter\n")
    (root / "chapter.md").write_text(CHAPTER)


def _build(root: Path) -> str:
    env = dict(os.environ, PYTHONPATH=str(root) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    jb = Path(sys.executable).parent / "jupyter-book"
    subprocess.run([str(jb), "build", str(root), "--quiet"], check=True, env=env,
                   capture_output=True, timeout=600)
    return (root / "_build" / "html" / "chapter.html").read_text()


def test_hash_follows_content(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "a.py").write_text("x = 1\n")
    h1 = book_cache.package_hash(pkg)
    (pkg / "__pycache__").mkdir()
    (pkg / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"junk")
    assert book_cache.package_hash(pkg) == h1          # bytecode does not count
    (pkg / "a.py").write_text("x = 2\n")
    assert book_cache.package_hash(pkg) != h1


def test_sync_clears_only_on_change(tmp_path):
    pkg, build = tmp_path / "pkg", tmp_path / "_build"
    cache, doctrees = build / ".jupyter_cache", build / ".doctrees"
    pkg.mkdir()
    (pkg / "a.py").write_text("x = 1\n")
    cache.mkdir(parents=True)
    assert book_cache.sync(pkg, build) is True          # no stamp yet: clear to be safe
    cache.mkdir()
    doctrees.mkdir()
    (cache / "keep").write_text("cached")
    assert book_cache.sync(pkg, build) is False and (cache / "keep").exists()
    (pkg / "a.py").write_text("x = 2\n")
    assert book_cache.sync(pkg, build) is True
    assert not cache.exists() and not doctrees.exists()


def test_editing_the_package_reexecutes_the_chapter(tmp_path):
    _make_book(tmp_path)
    build = tmp_path / "_build"
    book_cache.sync(tmp_path / "tinypkg", build)
    assert "VALUE 111" in _build(tmp_path)
    (tmp_path / "tinypkg" / "__init__.py").write_text("VALUE = 222\n")
    stale = _build(tmp_path)
    assert "VALUE 111" in stale          # the problem: the cache keeps the old output
    assert book_cache.sync(tmp_path / "tinypkg", build) is True
    assert "VALUE 222" in _build(tmp_path)
