# Quick start: `make run` then `make test`. Both build the virtual environment themselves.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DEMO   ?= .demo

.PHONY: run test lint typecheck layers venv dev-venv debs bench clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/activate pyproject.toml
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.dev-installed: $(BIN)/activate pyproject.toml
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

venv: $(VENV)/.installed
dev-venv: $(VENV)/.dev-installed

## make run: sample hospital data -> backup -> check -> restore -> compare, on embedded defaults.
run: venv
	$(BIN)/medark demo --workdir $(DEMO)

## Debian packages the tests need (none beyond the base image today; kept as the one place to add them).
debs:
	@true

lint: dev-venv
	$(BIN)/ruff check src tests bench

typecheck: dev-venv
	$(BIN)/mypy

layers: dev-venv
	$(BIN)/lint-imports

test: debs dev-venv lint typecheck layers
	$(BIN)/pytest -q --cov --cov-report=term:skip-covered

bench: venv
	$(BIN)/python bench/run_bench.py

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache .mypy_cache .ruff_cache
