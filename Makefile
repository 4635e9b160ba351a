# `make` sets up a virtual environment and runs the whole House Prices pipeline;
# `make test` sets up and runs the test suite (what CI runs).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: all setup repro test

all: repro

$(BIN)/kpipe: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

setup: $(BIN)/kpipe

repro: setup
	$(BIN)/dvc repro

test: setup
	$(BIN)/python -m pytest
