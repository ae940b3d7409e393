"""Build the book's two editions, and the translation catalogs, from one source and one cache.

    python tools/build_book.py html       # English site   -> _build/html/
    python tools/build_book.py zh         # Chinese site   -> _build/html/zh/
    python tools/build_book.py gettext    # message templates, one .pot per page -> _build/gettext/

Every build reads the same `_config.yml` and `_toc.yml` through Jupyter Book's own Sphinx entry
point, so the editions cannot differ in anything but their language. Each builder keeps its own
doctree folder (Sphinx refuses to reuse one environment for another builder or language), and
all of them take notebook outputs from the one execution cache in `.jupyter_cache`: the English
build executes what changed, the Chinese build finds every notebook already cached and executes
nothing (`make book` runs them in that order).

Options after the edition name: `-W` (warnings are errors), `--keep-going`, `--all` (rebuild
every page), `--outdir DIR` (build elsewhere, with its own doctrees), `--no-execute` (no
outputs at all: enough for the catalogs, which hold no output). Exit status is Sphinx's.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "_build"
CACHE = BUILD / ".jupyter_cache"

# edition -> (Sphinx builder, output folder, doctree folder, config overrides)
EDITIONS = {
    "html": ("html", BUILD / "html", BUILD / ".doctrees", {}),
    "zh": ("html", BUILD / "html" / "zh", BUILD / ".doctrees-zh",
           {"language": "zh_CN", "html_title": "All you need about LLMs（中文版）",
            # myst-nb's labels on folded code cells ("Show code cell source")
            "nb_code_prompt_show": "展开代码单元", "nb_code_prompt_hide": "收起代码单元"}),
    "gettext": ("gettext", BUILD / "gettext", BUILD / ".doctrees-gettext", {}),
}


def build(edition: str, *, warnings_are_errors: bool = False, keep_going: bool = False,
          force_all: bool = False, outdir: Path | None = None, execute: bool = True) -> int:
    """Run one Sphinx build of the book; return its exit status (0 when it succeeded)."""
    if edition not in EDITIONS:
        raise ValueError(f"edition must be one of {sorted(EDITIONS)}, got {edition!r}")
    from jupyter_book.sphinx import build_sphinx

    builder, default_out, doctrees, overrides = EDITIONS[edition]
    overrides = dict(overrides)
    if outdir is not None:      # a build somewhere else (the tests): its own doctrees too
        outdir = Path(outdir)
        doctrees = outdir / ".doctrees"
    else:
        outdir = default_out
    if not execute:             # the messages do not depend on outputs (they are not translated)
        overrides["nb_execution_mode"] = "off"
        overrides["course_placeholder_glue"] = True   # _ext/course_i18n.py
    # What `jupyter-book build .` passes for a book: the external table of contents.
    overrides["external_toc_path"] = (ROOT / "_toc.yml").as_posix()
    overrides["latex_individualpages"] = False
    # One execution cache for every edition (by default myst-nb puts it beside the output
    # folder, which for the Chinese site would be inside _build/html/ and empty).
    overrides["nb_execution_cache_path"] = CACHE.as_posix()
    result = build_sphinx(
        ROOT,
        outdir,
        use_external_toc=True,
        noconfig=True,
        path_config=str(ROOT / "_config.yml"),
        confoverrides=overrides,
        doctreedir=doctrees,
        builder=builder,
        warningiserror=warnings_are_errors,
        keep_going=keep_going,
        force_all=force_all,
    )
    if isinstance(result, BaseException):
        print(f"{edition} build failed: {result!r}", file=sys.stderr)
        return 1
    return int(result)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("edition", choices=sorted(EDITIONS))
    parser.add_argument("-W", dest="warnings_are_errors", action="store_true")
    parser.add_argument("--keep-going", action="store_true")
    parser.add_argument("--all", dest="force_all", action="store_true")
    parser.add_argument("--outdir", type=Path, help="write here instead of _build/")
    parser.add_argument("--no-execute", dest="execute", action="store_false",
                        help="do not execute notebooks, not even from the cache")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    status = build(args.edition, warnings_are_errors=args.warnings_are_errors,
                   keep_going=args.keep_going, force_all=args.force_all,
                   outdir=args.outdir, execute=args.execute)
    seconds = time.perf_counter() - start
    print(f"{args.edition} build: {'ok' if status == 0 else 'FAILED'} in {seconds:.1f} s")
    return status


if __name__ == "__main__":
    sys.exit(main())
