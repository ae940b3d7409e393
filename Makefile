# All you need about LLMs: build the book, run the tests, run the benchmarks.
#   make book    executed HTML book in _build/html, its Chinese edition in _build/html/zh
#   make gettext refresh the Chinese catalogs (locale/zh_CN) from the English pages
#   make notebooks-zh  the Chinese notebooks zh/book/*.md from book/*.md and the catalogs
#   make test    ruff + unit tests + every chapter cell by cell (nbval)
#   make test-avx2   the same tests forced to the AVX2 kernel set on one thread
#   make portability the spread of every glued number across kernel sets -> bench/portability.json
#   make lab     JupyterLab with the chapters opening as notebooks
#   make bench   wall time and peak memory of every chapter -> bench/notebooks.json
#   make check-site  open every page of the built book in headless Chromium and check it
#   make clean   remove build outputs and caches (keeps .venv)

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV    ?= .venv
BIN     := $(VENV)/bin
PY      := $(BIN)/python
# Python 3.11 is what the pins are tested with; fall back to whatever python3 is.
BOOTSTRAP_PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
# Reinstall only when the dependency lists change.
STAMP   := $(VENV)/.installed
BENCH_ARGS ?=


.PHONY: help install book gettext notebooks-zh check-site test test-avx2 portability lint lab bench clean

# Spelling: prose, code and tests ("vermillion": the Okabe-Ito colour; "nd": n x d; "ket": a
# syllable of the generated town names; .txt: text snapshots keep their authors' spelling).
CODESPELL_ARGS := --skip="*.json,*.safetensors,*.bib,*.svg,*.txt" --ignore-words-list="vermillion,nd,3nd,ket"
CODESPELL_PATHS := book course_lib tests tools _ext bench README.md CONTRIBUTING.md Makefile conftest.py

help:
	@sed -n '2,12p' Makefile | sed 's/^# *//'

# Which torch build a new .venv gets: `auto` (the CPU build on Linux without an NVIDIA GPU, the
# default build elsewhere), `cpu`, or `default` (PyPI's, which on Linux pulls CUDA: several GB).
TORCH ?= auto
CPU_TORCH_INDEX := https://download.pytorch.org/whl/cpu

$(PY):
	@test -n "$(BOOTSTRAP_PYTHON)" || { echo "no python3.11 or python3 on PATH" >&2; exit 1; }
	$(BOOTSTRAP_PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	@build="$(TORCH)"; \
	if [ "$$build" = auto ]; then \
	    if [ "$$(uname -s)" = Linux ] && ! command -v nvidia-smi >/dev/null; then build=cpu; \
	    else build=default; fi; \
	fi; \
	if [ "$$build" = cpu ]; then \
	    version=$$(sed -n 's/^torch==//p' requirements.txt); \
	    echo "installing torch $$version, CPU build (no NVIDIA GPU found; TORCH=default for CUDA)"; \
	    $(PY) -m pip install --quiet --retries 1 --no-deps --index-url $(CPU_TORCH_INDEX) \
	        "torch==$$version" \
	        || echo "the CPU index was unreachable: requirements.txt installs torch instead"; \
	fi

$(STAMP): requirements.txt constraints.txt pyproject.toml | $(PY)
	$(PY) -m pip install -r requirements.txt
	touch $(STAMP)

install: $(STAMP)

# The execution cache re-runs a chapter only when its cells change; tools/book_cache.py also
# clears it when course_lib's content changes, so the site never shows numbers from old code.
# Both editions read the one execution cache: the English build executes what changed, the
# Chinese one (language zh_CN, catalogs in locale/) executes nothing (tools/build_book.py).
book: $(STAMP)
	$(PY) tools/book_cache.py
	$(PY) tools/build_book.py html -W --keep-going
	$(PY) tools/build_book.py zh -W --keep-going
	@echo "HTML: $(CURDIR)/_build/html/index.html (中文: $(CURDIR)/_build/html/zh/index.html)"

# After an English edit: new or changed messages appear untranslated in locale/zh_CN/ (and
# tests/test_translation.py fails until they are translated); the Chinese notebooks follow.
gettext: $(STAMP)
	$(PY) tools/build_book.py gettext
	$(BIN)/sphinx-intl update -p _build/gettext -l zh_CN -d locale -w 0 --no-obsolete
	$(PY) tools/translation.py stats

notebooks-zh: $(STAMP)
	$(PY) tools/translation.py notebooks

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/codespell $(CODESPELL_ARGS) $(CODESPELL_PATHS)

# Every page of the built site in headless Chromium: console errors, images, math, links,
# glued figures, the search box; one screenshot per page in _build/site-check/.
check-site: $(STAMP)
	$(PY) tools/check_site.py _build/html --shots _build/site-check

# pytest's settings (nbval flags, testpaths tests/ and book/) are in pyproject.toml;
# conftest.py limits nbval to the notebooks in _toc.yml. Any pytest exit code other than 0,
# including 5 (no tests collected), fails the target.
test: lint
	$(PY) -m pytest

# What a learner's laptop with an older CPU gives: torch, MKL and oneDNN forced to AVX2, one
# thread (CONTRIBUTING.md, "Exact or within a tolerance"). .ci/run runs it after `make test`.
AVX2_ENV := ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 ONEDNN_MAX_CPU_ISA=AVX2 \
	OMP_NUM_THREADS=1
test-avx2: $(STAMP)
	$(AVX2_ENV) $(PY) -m pytest

portability: $(STAMP)
	$(PY) tools/portability.py

lab: $(STAMP)
	$(BIN)/jupytext-config \
	    --settings-file $(VENV)/etc/jupyter/labconfig/default_setting_overrides.json \
	    set-default-viewer markdown myst
	$(BIN)/jupyter lab book/

bench: $(STAMP)
	$(PY) bench/run_notebooks.py $(BENCH_ARGS)

clean:
	rm -rf _build .jupyter_cache .pytest_cache .ruff_cache bench/*.tmp
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -print0 | xargs -0 rm -rf
	find book -name '*.ipynb' -delete
	find locale -name '*.mo' -delete
	rm -rf book/.ipynb_checkpoints
