# Two entry points for a fresh machine with Python 3.11+:  make demo  and  make test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install system models demo test test-fast bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Builds the default text and image models once (cached under $ATLAS_MODELS or $ATLAS_HOME/models).
models: $(STAMP)
	$(BIN)/atlas models install

# The demo maps text only: its model is built when first needed, the image model not at all.
demo: $(STAMP)
	$(BIN)/atlas demo

system:
	bash scripts/install-system-deps.sh

test: system models
	$(BIN)/lint-imports
	$(BIN)/python -m pytest

test-fast: models
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -m "not slow"

bench: models
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .pytest_cache
