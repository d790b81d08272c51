# ketaclinic task runner: `make run` starts a demo clinic, `make test` runs every test.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: install run test test-fast lint docs bench bench-deps clean load crashtest fuzz

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

## Start the app on SQLite with synthetic demo data (seeded on the first run only).
run: $(STAMP)
	KETACLINIC_ENV=dev $(BIN)/ketaclinic demo --if-empty
	KETACLINIC_ENV=dev $(BIN)/ketaclinic serve

## The whole suite on SQLite and PostgreSQL (PostgreSQL and browser tests skip with a reason
## where the machine lacks them; under CI=true a skip fails). Exit code 5 (no tests) fails.
test: $(STAMP)
	@$(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$rc

## Without the browser tests and on SQLite only: the quick loop while coding.
test-fast: $(STAMP)
	KETACLINIC_TEST_DATABASES=sqlite $(BIN)/python -m pytest -m "not browser" -q

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy src/ketaclinic/clinical

## Regenerate the generated reference docs (a test fails when they are stale).
docs: $(STAMP)
	$(BIN)/ketaclinic docs cli > docs/cli.md

## Benchmarks print ratios against references timed in the same run. The PK one compares with
## opentiva (MIT), which is no dependency and builds only with Cython and without build
## isolation: bench-deps tries that install and carries on without it (never part of `make test`).
OPENTIVA ?= opentiva==1.1.2
bench-deps: $(STAMP)
	@$(BIN)/python -c "import opentiva" 2>/dev/null || { \
	  echo "== installing the optional PK reference $(OPENTIVA) (Cython build, no build isolation)"; \
	  $(BIN)/python -m pip install --quiet --disable-pip-version-check cython wheel && \
	  $(BIN)/python -m pip install --quiet --disable-pip-version-check --no-build-isolation $(OPENTIVA) \
	  || echo "note: $(OPENTIVA) did not install; bench_pk.py skips that comparison"; }

bench: $(STAMP) bench-deps
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build *.egg-info

## Clinic-day load against the real server (50 users on SQLite, 200 on PostgreSQL, 10 minutes
## each by default; LOAD_ARGS="--duration 120 --pg-users 100" to change). Tables in out/.
LOAD_ARGS ?=
load: $(STAMP)
	PYTHONPATH=src $(BIN)/python tools/loadtest.py $(LOAD_ARGS)

## SIGKILL the server during concurrent writes, 20 trials per backend; table in out/.
CRASH_ARGS ?=
crashtest: $(STAMP)
	PYTHONPATH=src $(BIN)/python tools/crashtest.py $(CRASH_ARGS)

## Schemathesis against the OpenAPI schema, once per role, with many examples per operation;
## every HTML form route with every hostile value and every numeric field.
fuzz: $(STAMP)
	KETACLINIC_FUZZ_EXAMPLES=$${KETACLINIC_FUZZ_EXAMPLES:-100} KETACLINIC_TEST_DATABASES=$${KETACLINIC_TEST_DATABASES:-sqlite} \
	  KETACLINIC_FORM_FUZZ=full $(BIN)/python -m pytest tests/integration/test_harden_fuzz.py \
	  tests/integration/test_harden_form_fuzz.py -q -p no:cacheprovider
