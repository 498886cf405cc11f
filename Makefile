# Quick start: `make run` then `make test`. Both build the virtual environment themselves.
# The system Python when there is one: PostgreSQL runs archive_command/restore_command
# (`medark pg wal-push`/`wal-fetch`) as its own OS user, who cannot reach a Python that
# lives under /root (pyenv), so the venv is built on /usr/bin/python3 (3.11+).
PYTHON ?= $(shell /usr/bin/python3 -c 'import sys; assert sys.version_info >= (3, 11)' \
            2>/dev/null && echo /usr/bin/python3 || echo python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
DEMO   ?= .demo

.PHONY: run test test-seconds coverage fuzz lint typecheck layers venv dev-venv bytecode debs report-debs web web-check web-debs bench deb clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/activate pyproject.toml
	$(BIN)/pip install --quiet -e '.[report]'
	touch $@

$(VENV)/.dev-installed: $(BIN)/activate pyproject.toml
	PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 $(BIN)/pip install --quiet -e '.[dev,report]'
	touch $@ $(VENV)/.installed

venv: $(VENV)/.installed
dev-venv: $(VENV)/.dev-installed

## The project's modules compiled ahead (an editable install has no .pyc, and with
## PYTHONDONTWRITEBYTECODE set every `medark` run would compile them again: ~50 ms each).
bytecode:
	@$(BIN)/python -m compileall -q src >/dev/null

## make run: sample hospital data -> backup -> check -> restore -> compare, on embedded defaults.
## It installs what `medark report` draws Chinese with, as `make test` does.
run: report-debs venv bytecode web
	$(BIN)/medark demo --workdir $(DEMO)

## Debian packages the tests need: PostgreSQL's server programs (initdb, pg_basebackup,
## pg_receivewal, pg_amcheck) and MariaDB's (server, client, mariadb-backup) for the
## throwaway servers of the database tests; the CJK fonts, Pango and fontconfig the PDF
## reports render Chinese with (REPORT_DEBS: `make run` installs those alone), and
## poppler-utils the report tests read PDFs with; chromium, which tests/web drive the
## console in through Playwright (executable_path, never a browser download); wrk, the
## load client of bench/server_bench.py (its smoke test runs the bench with it).
REPORT_DEBS := fonts-noto-cjk fontconfig libpango-1.0-0 libpangoft2-1.0-0
DEBS := postgresql postgresql-15-pgaudit pgbouncer mariadb-server mariadb-client mariadb-backup $(REPORT_DEBS) poppler-utils haproxy chromium wrk orthanc orthanc-postgresql dcmtk openssh-server
debs report-debs:
	@missing=""; for p in $(if $(filter report-debs,$@),$(REPORT_DEBS),$(DEBS)); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get install -y -q $$missing; \
	  else sudo apt-get install -y -q $$missing; fi; \
	fi

## make web: the web console (web/: Vue 3, TypeScript, Element Plus) built into
## src/medark/server/console/, which `medark server` serves at / and the wheel and the
## deb ship (docs/console.md). `npm ci` only when node_modules is older than
## package-lock.json; the build only when a source or configuration is newer than the
## built index.html, so an unchanged tree costs nothing. make web-check: its lint, type
## check and unit tests (make test runs them).
WEB := web
CONSOLE_INDEX := src/medark/server/console/index.html
WEB_SOURCES := $(shell find $(WEB)/src $(WEB)/public -type f -not -path '$(WEB)/src/types/*' \
                 2>/dev/null) $(wildcard $(WEB)/index.html $(WEB)/*.ts $(WEB)/*.js $(WEB)/*.json)
web-debs:
	@command -v npm >/dev/null || { echo "installing Debian packages: nodejs npm"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get install -y -q nodejs npm; \
	  else sudo apt-get install -y -q nodejs npm; fi; }

$(WEB)/node_modules/.installed: $(WEB)/package.json $(WEB)/package-lock.json | web-debs
	cd $(WEB) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(CONSOLE_INDEX): $(WEB)/node_modules/.installed $(WEB_SOURCES)
	cd $(WEB) && npm run build

web: $(CONSOLE_INDEX)

WEB_CHECKS = cd $(WEB) && npm run --silent lint && npm run --silent typecheck && npm test --silent
web-check: web
	$(WEB_CHECKS)

lint: dev-venv
	$(BIN)/ruff check src tests bench

typecheck: dev-venv
	$(BIN)/mypy

layers: dev-venv
	$(BIN)/lint-imports

## Test modules run on TEST_WORKERS processes, each module whole on one of them (its
## fixtures and servers stay its own): most e2e time is spent waiting on `medark`
## subprocesses and throwaway servers, so 4 workers fit 2 cores (a quiet run: 1089 s of
## pytest with 4, 1219 s with 3; on 2026-12-07 1123 s with 4 and 1170 s with 5, whose
## extra worker only added CPU: 1,818 CPU s against 1,716); tests that read beside a
## daemon wait out its locks with --retry-lock, and timeouts leave room for a load of 4
## workers). Coverage is `make coverage`: measured in every `medark` subprocess it nearly
## doubles the e2e tests' time (an e2e module: 17.6 s without, 31.9 s with), which took
## the suite past 20 minutes. tests/web drive the built console (`make web`) in chromium;
## their screenshots go to .artefacts/console/ (MEDARK_TEST_ARTEFACTS to change it).
## Modules start longest first (tests/longest_first.py), from the seconds of a recorded
## run: `make test-seconds` runs the suite and rewrites tests/module_seconds.json.
TEST_WORKERS ?= 4
PYTEST = $(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile --durations=25
## The static checks that take time (mypy, and the console's lint, type check and unit
## tests: about 100 s on a fresh machine) run beside the suite, whose waits leave a CPU
## for them; their output follows the suite's, and either failing fails make test.
CHECKS_LOG = .artefacts/checks.log
test: debs dev-venv bytecode lint layers web
	@mkdir -p .artefacts
	@( $(BIN)/mypy && $(WEB_CHECKS) ) > $(CHECKS_LOG) 2>&1 & checks=$$!; \
	$(PYTEST); tests=$$?; wait $$checks; checked=$$?; \
	echo "--- mypy and web-check ($(CHECKS_LOG)):"; cat $(CHECKS_LOG); \
	[ $$checked -eq 0 ] || echo "make test: mypy or web-check failed (exit $$checked)"; \
	[ $$tests -eq 0 ] && [ $$checked -eq 0 ]

test-seconds: debs dev-venv bytecode web
	$(PYTEST) --junitxml=.artefacts/junit.xml
	$(BIN)/python tests/module_seconds.py .artefacts/junit.xml

## make coverage: the whole suite with line coverage, `medark` subprocesses included.
coverage: debs dev-venv bytecode web
	$(PYTEST) --cov --cov-report=term:skip-covered

## make fuzz: every parser of repository and source bytes, coverage-guided with atheris
## (installed on demand, not a dependency) for FUZZ_SECONDS each, seeded from
## tests/fuzz/corpus/<target>; new inputs go to .fuzz/corpus, a crasher to .fuzz/crashes
## and stops the run (tests/fuzz/README.md). make test runs the same targets briefly.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= $(notdir $(wildcard tests/fuzz/corpus/*))
fuzz: debs dev-venv bytecode
	@$(BIN)/python -c 'import atheris' 2>/dev/null || $(BIN)/pip install --quiet atheris
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p .fuzz/corpus/$$t .fuzz/crashes; \
	  echo "== fuzz $$t for $(FUZZ_SECONDS) s"; \
	  $(BIN)/python tests/fuzz/run_atheris.py $$t .fuzz/corpus/$$t tests/fuzz/corpus/$$t \
	    -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=.fuzz/crashes/$$t- \
	    -print_final_stats=1 2>.fuzz/$$t.log || { tail -40 .fuzz/$$t.log; exit 1; }; \
	  grep -E 'stat::(number_of_executed_units|new_units_added)' .fuzz/$$t.log; \
	done

bench: venv bytecode
	$(BIN)/python bench/run_bench.py

## make deb: dist/medark_<version>_<arch>.deb, a virtualenv in /opt/medark with the systemd
## units (dpkg-deb only; packaging/deb/build.sh --help, docs/deployment.md).
deb: web
	packaging/deb/build.sh --out dist

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache .mypy_cache .ruff_cache
