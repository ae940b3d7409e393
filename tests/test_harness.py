"""The notebook harness: a failing cell in a chapter fails `make test`, with the cell shown.

Each test runs pytest in a subprocess with this repository's conftest.py (loaded as a plugin
with `-p conftest`) and pyproject.toml (`-c`, so `--nbval-lax` comes from the real addopts),
on small MyST notebooks written to a temporary folder.
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jupytext
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from conftest import is_text_notebook, toc_notebooks  # noqa: E402

HEADER = """\
---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
    format_version: 0.13
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---
"""


def _notebook(path: Path, *cells: str, tags: dict[int, str] | None = None) -> Path:
    tags = tags or {}
    parts = [HEADER, "# A test notebook\n"]
    for i, source in enumerate(cells):
        options = f":tags: [{tags[i]}]\n\n" if i in tags else ""
        code = textwrap.dedent(source).strip()
        parts.append(f"```{{code-cell}} ipython3\n{options}{code}\n```\n")
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


def _pytest(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    command = [sys.executable, "-m", "pytest", "-c", str(REPO / "pyproject.toml"),
               "--rootdir", str(cwd), "-p", "conftest", "-p", "no:cacheprovider",
               "-rA", "--color=no", *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def test_failing_cell_fails_pytest_and_is_shown(tmp_path):
    nb = _notebook(
        tmp_path / "broken.md",
        "answer = 6 * 7\nprint('first cell ran', answer)",
        "ratio = answer / 2\nassert ratio == 20, f'the claim drifted: ratio is {ratio}'",
        "print('after the failure')",
    )
    result = _pytest(str(nb), cwd=tmp_path)
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "PASSED broken.md::Cell 0" in out
    assert "FAILED broken.md::Cell 1 - Notebook cell execution failed" in out
    assert "PASSED broken.md::Cell 2" in out  # later cells still run and are reported
    # the report shows the failing cell's source and the error it raised
    assert "ratio = answer / 2" in out
    assert "AssertionError" in out and "the claim drifted: ratio is 21.0" in out


def test_clean_notebook_passes(tmp_path):
    nb = _notebook(
        tmp_path / "clean.md",
        "import course_lib\nx = sum(range(10))",
        "assert x == 45",
        "1 / 0",  # tagged raises-exception: an error the chapter shows on purpose
        "import socket\n"
        "try:\n"
        "    socket.create_connection(('203.0.113.1', 80), timeout=2)\n"
        "except OSError as err:\n"
        "    assert 'network access blocked' in str(err), err\n"
        "else:\n"
        "    raise AssertionError('the kernel reached the network')",
        tags={2: "raises-exception"},
    )
    result = _pytest(str(nb), cwd=tmp_path)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "4 passed" in out


def test_toc_lists_the_intro_seven_chapters_then_the_appendices():
    paths = toc_notebooks()
    names = [p.relative_to(REPO).as_posix() for p in paths]
    assert names[0] == "book/intro.md"
    chapters = [n for n in names[1:] if n.split("/")[1][:1].isdigit()]
    # chapters in order 01..07; a chapter may have a second part (05b_...)
    assert sorted({n.split("/")[1][:2] for n in chapters}) == [f"0{i}" for i in range(1, 8)]
    assert chapters == sorted(chapters)
    assert names[1:len(chapters) + 1] == chapters         # appendices come after the chapters
    assert names[len(chapters) + 1:] == ["book/notes.md", "book/glossary.md", "book/errata.md",
                                          "book/references.md"]
    for path in paths:
        assert path.exists(), f"_toc.yml lists {path} but it does not exist"


def test_collection_is_exactly_the_notebooks_in_the_toc():
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         "book"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    # a notebook without code cells yields no test items: expect those with cells
    expected = {
        p.relative_to(REPO).as_posix()
        for p in toc_notebooks()
        if is_text_notebook(p) and any(c.cell_type == "code" for c in jupytext.read(p).cells)
    }
    out = result.stdout + result.stderr
    assert result.returncode == (0 if expected else 5), out
    collected = {line.split("::")[0] for line in result.stdout.splitlines() if "::Cell" in line}
    assert collected == expected


@pytest.mark.parametrize("name", ["README.md", "book/intro.md"])
def test_plain_markdown_is_not_a_notebook(name):
    assert not is_text_notebook(REPO / name)
