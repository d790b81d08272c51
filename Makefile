# ketaclinic task runner: `make run` starts a demo clinic, `make test` runs every test.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: install run test test-fast lint docs bench clean

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

bench: $(STAMP)
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build *.egg-info
