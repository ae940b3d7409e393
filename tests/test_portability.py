"""tools/portability.py reads glued numbers and measures their spread; bench/portability.json,
its latest result, covers every chapter and config, and the tolerances in use sit above it."""

import json
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import portability as P  # noqa: E402

REPORT = json.loads((ROOT / "bench" / "portability.json").read_text())


@pytest.mark.parametrize("text, value", [
    ("1,234", 1234.0), ("-3.5e-07", -3.5e-7), ("12.5%", 0.125), ("0", 0.0), (".5", 0.5),
    ("'42'", 42.0)])
def test_as_number_reads_what_glue_value_writes(text, value):
    assert P.as_number(text) == pytest.approx(value, rel=1e-12)


@pytest.mark.parametrize("text", ["AVX512", "[0.1, 0.2]", "1.2.3", "", "NaN, as it should",
                                  "3 of 4", "1e"])
def test_as_number_refuses_text(text):
    assert P.as_number(text) is None


def test_spread_of_numbers_and_text():
    s = P.spread({"a": "1.0", "b": "1.5", "c": "2.0"})
    assert s["max_abs_diff"] == 1.0 and s["max_rel_diff"] == 0.5
    assert P.spread({"a": "7", "b": "7"})["max_rel_diff"] == 0.0
    assert P.spread({"a": "AVX2", "b": "AVX512"})["agree"] is False
    assert P.spread({"a": "nan", "b": "nan"}).get("max_rel_diff") is None   # not a number


def test_glued_reads_myst_nb_outputs():
    """The text value of each glue() output, by name, with myst-nb's mime prefix removed;
    a glued figure is left out."""
    prefix = "application/papermill.record/"
    cell = nbformat.v4.new_code_cell("x")
    cell.outputs = [
        nbformat.v4.new_output("display_data", data={prefix + "text/plain": "0.25"},
                               metadata={"scrapbook": {"name": "share", "mime_prefix": prefix}}),
        nbformat.v4.new_output("display_data",
                               data={prefix + "image/png": "iVBOR", prefix + "text/plain": "<F>"},
                               metadata={"scrapbook": {"name": "fig", "mime_prefix": prefix}}),
        nbformat.v4.new_output("stream", text="printed, not glued"),
    ]
    nb = nbformat.v4.new_notebook(cells=[cell])
    assert P.glued(nb) == {"share": "0.25"}


def test_summary_separates_run_to_run_noise_from_kernel_spread():
    a, b = P.REPEAT
    runs = [{"config": c, "cpu_capability": "X", "probes": {"loss": v, P.TO_RECORD: d},
             "notebooks": {"book/x.md": {"seconds": 1.0, "failed_cells": [],
                                         "glued": {"loss": str(v), "seconds": t}}}}
            for c, v, d, t in ((a, 1.0, 0.0, "3.1"), (b, 1.0, 0.0, "2.9"),
                               ("avx2-1t", 1.0 + 1e-7, 2e-7, "3.0"))]
    rep = P.summarise(runs, {})
    glued = rep["notebooks"]["book/x.md"]["glued"]
    assert glued["seconds"]["run_to_run"] and not glued["loss"]["run_to_run"]
    assert rep["run_to_run"] == ["book/x.md::seconds"]
    assert [r["quantity"] for r in rep["most_sensitive"]][0] == "probe::" + P.TO_RECORD
    assert rep["probes"][P.TO_RECORD]["max_rel_diff"] == 2e-7          # a distance: its max
    assert rep["probes"]["loss"]["max_rel_diff"] == pytest.approx(1e-7, rel=1e-6)


def test_the_report_covers_every_chapter_and_config():
    assert set(REPORT["configs"]) == set(P.CONFIGS)
    assert set(REPORT["notebooks"]) == set(P.chapters())
    for path, nb in REPORT["notebooks"].items():
        assert nb["failed_cells"] == {}, path          # every assert holds under every config
        assert set(nb["seconds"]) == set(P.CONFIGS), path
    kernels = set(REPORT["cpu_capability"].values())
    assert {"AVX2", "DEFAULT"} <= kernels              # the forced kernel sets took effect


def test_tolerances_sit_above_the_measured_spread():
    """Each tolerance the tests use is at least 10 times the largest spread measured for the
    quantity it guards (CONTRIBUTING.md, "Exact or within a tolerance")."""
    from course_lib.checkpoint import EARLY_RTOL

    sys.path.insert(0, str(ROOT / "tests"))
    from test_organism_text import EVAL_RTOL

    probes = REPORT["probes"]
    evals = [e["max_rel_diff"] for k, e in probes.items() if k.endswith("val loss")]
    curves = [e["max_rel_diff"] for k, e in probes.items() if k.endswith(P.TO_RECORD)]
    assert len(evals) == 3 and len(curves) == 6
    assert 10 * max(evals) <= EVAL_RTOL
    assert 10 * max(curves) <= EARLY_RTOL
