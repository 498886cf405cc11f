# Quick start: `make run` then `make test`. Both build the virtual environment themselves.
# The system Python when there is one: PostgreSQL runs archive_command/restore_command
# (`medark pg wal-push`/`wal-fetch`) as its own OS user, who cannot reach a Python that
# lives under /root (pyenv), so the venv is built on /usr/bin/python3 (3.11+).
PYTHON ?= $(shell /usr/bin/python3 -c 'import sys; assert sys.version_info >= (3, 11)' \
            2>/dev/null && echo /usr/bin/python3 || echo python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
DEMO   ?= .demo

.PHONY: run test lint typecheck layers venv dev-venv bytecode debs bench clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/activate pyproject.toml
	$(BIN)/pip install --quiet -e '.[report]'
	touch $@

$(VENV)/.dev-installed: $(BIN)/activate pyproject.toml
	$(BIN)/pip install --quiet -e '.[dev,report]'
	touch $@ $(VENV)/.installed

venv: $(VENV)/.installed
dev-venv: $(VENV)/.dev-installed

## The project's modules compiled ahead (an editable install has no .pyc, and with
## PYTHONDONTWRITEBYTECODE set every `medark` run would compile them again: ~50 ms each).
bytecode:
	@$(BIN)/python -m compileall -q src >/dev/null

## make run: sample hospital data -> backup -> check -> restore -> compare, on embedded defaults.
run: venv bytecode
	$(BIN)/medark demo --workdir $(DEMO)

## Debian packages the tests need: PostgreSQL's server programs (initdb, pg_basebackup,
## pg_receivewal, pg_amcheck) and MariaDB's (server, client, mariadb-backup) for the
## throwaway servers of the database tests; the CJK fonts and Pango the PDF reports render
## Chinese with (WeasyPrint), and poppler-utils the report tests read PDFs with.
DEBS := postgresql mariadb-server mariadb-client mariadb-backup \
        fonts-noto-cjk libpango-1.0-0 libpangoft2-1.0-0 poppler-utils
debs:
	@missing=""; for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get install -y -q $$missing; \
	  else sudo apt-get install -y -q $$missing; fi; \
	fi

lint: dev-venv
	$(BIN)/ruff check src tests bench

typecheck: dev-venv
	$(BIN)/mypy

layers: dev-venv
	$(BIN)/lint-imports

test: debs dev-venv bytecode lint typecheck layers
	$(BIN)/pytest -q --cov --cov-report=term:skip-covered

bench: venv bytecode
	$(BIN)/python bench/run_bench.py

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache .mypy_cache .ruff_cache
