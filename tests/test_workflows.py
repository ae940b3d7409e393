"""The publishing workflows pass actionlint, and Binder's environment cannot drift from the pins."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))


def _actionlint() -> str:
    exe = Path(sys.executable).parent / "actionlint"
    found = str(exe) if exe.exists() else shutil.which("actionlint")
    assert found, "actionlint is not installed (it is in requirements.txt)"
    return found


def test_workflows_pass_actionlint():
    assert WORKFLOWS, "no workflows"
    result = subprocess.run([_actionlint(), *map(str, WORKFLOWS)], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
                   "      - run: echo ${{ github.nonexistent_context_key }}\n"
                   "      - uses: actions/checkout@v5\n        with: {nope: 1}\n")
    result = subprocess.run([_actionlint(), str(bad)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode != 0


def test_book_workflow_publishes_and_rebuilds_weekly():
    book = yaml.safe_load((REPO / ".github/workflows/book.yml").read_text())
    triggers = book[True] if True in book else book["on"]   # YAML reads `on:` as True
    assert "push" in triggers and "schedule" in triggers
    steps = [s.get("uses", "") for s in book["jobs"]["build"]["steps"]]
    assert any(u.startswith("actions/upload-pages-artifact") for u in steps)
    deploy = [s.get("uses", "") for s in book["jobs"]["deploy"]["steps"]]
    assert any(u.startswith("actions/deploy-pages") for u in deploy)
    cache_step = next(s for s in book["jobs"]["build"]["steps"]
                      if s.get("uses", "").startswith("actions/cache"))
    assert "schedule" in cache_step["if"]        # the weekly build starts from a clean cache
    tests = yaml.safe_load((REPO / ".github/workflows/tests.yml").read_text())
    suite = tests["jobs"]["suite"]
    runs = suite["strategy"]["matrix"]["include"]
    assert {r["os"] for r in runs} == {"ubuntu-latest", "macos-latest", "windows-latest"}
    assert {"os": "ubuntu-latest", "kernels": "avx2-one-thread"} in runs
    commands = [s.get("run", "") for s in suite["steps"]]
    assert "python -m pytest -q" in commands      # the chapters too, not only tests/
    forced = next(c for c in commands if "ATEN_CPU_CAPABILITY=avx2" in c)
    assert "OMP_NUM_THREADS=1" in forced and "ONEDNN_MAX_CPU_ISA=AVX2" in forced


def _pins(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s#;]+)", line.strip())
        if m:
            out[m.group(1).lower().replace("_", "-")] = m.group(2)
    return out


def test_binder_pins_match_the_tested_environment():
    binder = (REPO / ".binder" / "requirements.txt").read_text()
    constraints = _pins((REPO / "constraints.txt").read_text())
    requirements = _pins((REPO / "requirements.txt").read_text())
    assert "-r ../requirements.txt" in binder           # everything else comes from the pins
    for name, version in _pins(binder).items():
        base = version.split("+", 1)[0]
        assert constraints.get(name, "").split("+", 1)[0] == base, name
        if name in requirements:
            assert requirements[name].split("+", 1)[0] == base, name
    runtime = (REPO / ".binder" / "runtime.txt").read_text().strip()
    assert runtime == "python-3.11"
    assert "jupytext-config set-default-viewer markdown myst" in (
        REPO / ".binder" / "postBuild").read_text()
