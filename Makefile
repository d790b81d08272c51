# ketaclinic task runner: `make run` starts a demo clinic, `make test` runs every test.
# `make help` lists the targets.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Two stamps: running needs the runtime dependencies only; the test targets add the dev extras
# (browser driver, fuzzer, linters). Each stamp is redone when pyproject.toml changes.
RUN_STAMP := $(VENV)/.stamp-runtime
DEV_STAMP := $(VENV)/.stamp-dev
# uv installs in parallel when it is on PATH; otherwise pip does the same job. Neither compiles
# every installed module to bytecode up front (pip's default, more than half of its CPU time
# here): Python compiles what it imports, once, on first use.
UV := $(shell command -v uv 2>/dev/null)
ifneq ($(UV),)
INSTALL := $(UV) pip install --quiet --python $(BIN)/python
else
INSTALL := $(BIN)/python -m pip install --quiet --disable-pip-version-check --no-compile
endif
PYTEST_ARGS ?=
# The test targets keep Python's bytecode cache on even where the environment turns it off
# (PYTHONDONTWRITEBYTECODE=1): otherwise the runner and every xdist worker compile all they
# import again, about three times the CPU of collecting from the cache (__pycache__/ is ignored).
PYTEST := env -u PYTHONDONTWRITEBYTECODE $(BIN)/python -m pytest

.PHONY: help install install-dev browser-deps fhir-deps run test test-fast lint docs bench bench-deps clean load crashtest fuzz

## List the targets.
help:
	@awk '/^## /{doc = doc (doc ? " " : "") substr($$0, 4); next} \
	  /^[a-z-]+:/{split($$0, t, ":"); if (doc) printf "  make %-11s %s\n", t[1], doc; doc = ""} \
	  /^$$/{doc = ""}' $(MAKEFILE_LIST)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(INSTALL) -e .
	@touch $@

$(DEV_STAMP): pyproject.toml | $(BIN)/python
	$(INSTALL) -e '.[dev]'
	@touch $@ $(RUN_STAMP)

## Install the runtime dependencies into .venv (what `make run` needs).
install: $(RUN_STAMP)

## Install the runtime and the dev dependencies into .venv (what the test targets need).
install-dev: $(DEV_STAMP)

## Start the app on SQLite with synthetic demo data (seeded on the first run only).
run: $(RUN_STAMP)
	KETACLINIC_ENV=dev $(BIN)/ketaclinic demo --if-empty
	KETACLINIC_ENV=dev $(BIN)/ketaclinic serve

## The whole suite on SQLite and PostgreSQL (PostgreSQL and browser tests skip with a reason
## where the machine lacks them; under CI=true a skip fails). Exit code 5 (no tests) fails.
test: $(DEV_STAMP) browser-deps fhir-deps
	@HYPOTHESIS_PROFILE=full $(PYTEST) $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$rc

## Install axe-core for the browser tests' accessibility checks (npm ci from tests/browser's
## lockfile) when missing; without npm the accessibility test skips with the reason.
AXE := tests/browser/node_modules/axe-core/axe.min.js
browser-deps:
	@if [ ! -f $(AXE) ] && command -v npm >/dev/null 2>&1; then \
	  echo "== installing axe-core for the browser tests (npm ci in tests/browser)"; \
	  npm ci --prefix tests/browser --no-audit --no-fund --silent || echo "note: npm ci failed"; fi

## Install Medplum's FHIR validator for the FHIR export tests (npm ci from tests/fhir's lockfile,
## kept apart from tests/browser) when missing; without node the test skips with the reason.
MEDPLUM := tests/fhir/node_modules/@medplum/core/package.json
fhir-deps:
	@if [ ! -f $(MEDPLUM) ] && command -v npm >/dev/null 2>&1; then \
	  echo "== installing the FHIR validator for the export tests (npm ci in tests/fhir)"; \
	  npm ci --prefix tests/fhir --no-audit --no-fund --silent || echo "note: npm ci failed"; fi

## The quick loop while coding: SQLite only, two workers, no browser and no slow tests (fuzz,
## load, crash and long property runs stay in `make test`), each property on fewer examples
## (HYPOTHESIS_PROFILE=fast; see TESTING.md). FAST_ARGS="-k dosing" to narrow it.
# --dist load hands each worker runs of neighbouring tests, so a module's imports, templates
# and shared fixtures are mostly paid for on one worker, not on both (TESTING.md).
# -p no:schemathesis: its pytest plugin (schemathesis' own test decorators, unused here; the fuzz
# test calls schemathesis itself and is slow) cost ~0.45 CPU-s to import in each of the three
# processes, and the fuzz test never runs in this loop.
FAST_ARGS ?=
test-fast: $(DEV_STAMP)
	KETACLINIC_TEST_DATABASES=sqlite HYPOTHESIS_PROFILE=fast $(PYTEST) -q \
	  -p no:cacheprovider -p no:schemathesis -n 2 --dist load -m "not browser and not slow" \
	  --ignore=tests/browser $(FAST_ARGS)

## Ruff on src, tests and benchmarks; mypy on all of src/ketaclinic.
lint: $(DEV_STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy src/ketaclinic

## Regenerate the generated reference docs (a test fails when they are stale).
docs: $(RUN_STAMP)
	$(BIN)/ketaclinic docs cli > docs/cli.md

## Benchmarks print ratios against references timed in the same run. The PK one compares with
## opentiva (MIT), which is no dependency and builds only with Cython and without build
## isolation: bench-deps tries that install and carries on without it (never part of `make test`).
OPENTIVA ?= opentiva==1.1.2
bench-deps: $(DEV_STAMP)
	@$(BIN)/python -c "import opentiva" 2>/dev/null || { \
	  echo "== installing the optional PK reference $(OPENTIVA) (Cython build, no build isolation)"; \
	  $(BIN)/python -m pip install --quiet --disable-pip-version-check cython wheel && \
	  $(BIN)/python -m pip install --quiet --disable-pip-version-check --no-build-isolation $(OPENTIVA) \
	  || echo "note: $(OPENTIVA) did not install; bench_pk.py skips that comparison"; }

bench: $(DEV_STAMP) bench-deps
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build *.egg-info

## Clinic-day load against the real server (50 users on SQLite, 200 on PostgreSQL, 10 minutes
## each by default; LOAD_ARGS="--duration 120 --pg-users 100" to change). Tables in out/.
LOAD_ARGS ?=
load: $(DEV_STAMP)
	PYTHONPATH=src $(BIN)/python tools/loadtest.py $(LOAD_ARGS)

## SIGKILL the server during concurrent writes, 20 trials per backend; table in out/.
CRASH_ARGS ?=
crashtest: $(DEV_STAMP)
	PYTHONPATH=src $(BIN)/python tools/crashtest.py $(CRASH_ARGS)

## Schemathesis against the OpenAPI schema, once per role, with many examples per operation;
## every HTML form route with every hostile value and every numeric field.
fuzz: $(DEV_STAMP)
	KETACLINIC_FUZZ_EXAMPLES=$${KETACLINIC_FUZZ_EXAMPLES:-100} KETACLINIC_TEST_DATABASES=$${KETACLINIC_TEST_DATABASES:-sqlite} \
	  KETACLINIC_FORM_FUZZ=full $(PYTEST) tests/integration/test_api_fuzz.py \
	  tests/integration/test_form_fuzz.py -q -p no:cacheprovider
