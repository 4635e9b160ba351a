# `make`      sets up .venv and runs the House Prices pipeline to submissions/submission.csv.
# `make test` sets up the same .venv and runs the whole test suite (what CI runs).
# Every recipe runs with .venv/bin first on PATH, so the `python` of the DVC stages'
# commands is the project's interpreter, whatever the calling shell has (or lacks).
PYTHON ?= python3
# Resolved before PATH changes below, so the venv is always built from the system's Python.
HOST_PYTHON := $(shell command -v $(PYTHON))
VENV := $(CURDIR)/.venv
BIN := $(VENV)/bin
export PATH := $(BIN):$(PATH)
export VIRTUAL_ENV := $(VENV)
export DVC_NO_ANALYTICS := 1
FASHION_DIR := /usr/share/datasets/fashion-mnist
# When this `make` started (read once, as make reads this file): "done in" counts the install too.
MAKE_START := $(shell date +%s)

.PHONY: all house-prices fashion setup test test-fast repro lint team-demo

all: house-prices

$(BIN)/kpipe: pyproject.toml
	@test -n "$(HOST_PYTHON)" || { echo "make: no $(PYTHON) on PATH (Python >= 3.11 is needed)"; exit 1; }
	$(HOST_PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -qq --upgrade pip
	$(BIN)/python -m pip install -qq -e '.[dev]'
	touch $@

setup: $(BIN)/kpipe

# The main job: fetch (bundled archive) -> validate -> cv -> train -> predict. DVC prints
# "Running stage '<name>'" as each stage starts and skips the stages that are up to date.
house-prices: setup
	@echo "make: House Prices pipeline (dvc repro predict): fetch -> validate -> cv -> train -> predict"
	@dvc repro predict && \
	  echo "make: done in $$(( $$(date +%s) - $(MAKE_START) )) s (set-up included): submissions/submission.csv"

# The Fashion-MNIST classifiers and the chapter studies (docs/fashion.md).
# The data: Debian's dataset-fashion-mnist by default (fashion_data.source: local), or the
# public URL (fashion_data.source: url).
fashion: setup
	@[ -d $(FASHION_DIR) ] || { \
	  echo "make: Fashion-MNIST is not in $(FASHION_DIR). Either install Debian's package"; \
	  echo "        sudo apt-get install dataset-fashion-mnist"; \
	  echo "      or set fashion_data.source: url in params.yaml to download it from fashion_data.url."; }
	dvc repro fetch-fashion train-fashion study-linreg study-weight-decay study-init

# Every stage of dvc.yaml, House Prices and Fashion-MNIST alike.
repro: setup
	dvc repro

# One pytest worker per core (pytest-xdist); a test file stays on one worker, so module
# fixtures (a trained model, a pipeline run against the tracking server) are built once. Files
# go to the workers in collection order, the longest first (tests/conftest.py, LONGEST_FIRST).
# With a worker per core, each worker's OpenMP and BLAS pools get one thread: pools of one
# thread per core in every worker would only contend. The documented commands run without these
# variables, as a user's shell has them (tests/documented.py).
PYTEST := OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 python -m pytest -n auto --dist loadfile \
	--no-loadscope-reorder

test: setup
	$(PYTEST)

# The edit-test loop: everything but the end-to-end runs (`dvc repro`, real services).
test-fast: setup
	$(PYTEST) -m "not e2e"

# Style: ruff's pycodestyle, pyflakes, import-order, pyupgrade, bugbear and blind-except rules (pyproject.toml).
lint: setup
	ruff check .

# The team setup on this machine (docs/team.md): PostgreSQL and mlflow server on 127.0.0.1, two
# `kpipe tune` workers and a third killed mid-trial on one study, the study's status, then
# everything stopped. Needs Debian's postgresql package.
team-demo: setup
	python scripts/team_demo.py

# The documentation site (mkdocs.yml, docs/) into site/; --strict fails on a broken link or anchor
# and on a page left out of the nav. `mkdocs serve` shows it while you edit.
.PHONY: docs
docs: setup
	mkdocs build --strict
