# Every target sets up what it needs: `make demo` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ARGS ?=

.PHONY: setup postgres demo test test-fast lint format proto proto-check bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

## PostgreSQL's server binaries, for the tests' throwaway servers (installed where missing)
postgres:
	@scripts/ensure_postgres.sh

setup: $(BIN)/.installed postgres

## the main job: a local consortium (gateway + 3 nodes) answers example queries
demo: setup
	$(BIN)/mpcgw demo $(ARGS)

## every check CI runs: generated code, lint and types (mypy --strict), all test layers
test: setup proto-check lint
	$(BIN)/pytest $(ARGS)

test-fast: setup
	$(BIN)/pytest -m "not e2e and not mpc" $(ARGS)

lint: setup
	$(BIN)/ruff check mpc_gateway tests benchmarks scripts
	$(BIN)/ruff format --check mpc_gateway tests benchmarks scripts
	$(BIN)/mypy

format: setup
	$(BIN)/ruff check --fix mpc_gateway tests benchmarks scripts
	$(BIN)/ruff format mpc_gateway tests benchmarks scripts

proto: setup
	$(BIN)/python scripts/gen_protos.py

proto-check: setup
	$(BIN)/python scripts/gen_protos.py --check

bench: setup
	$(BIN)/python -m benchmarks.run $(ARGS)

clean:
	rm -rf var .pytest_cache
