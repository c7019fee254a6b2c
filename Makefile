# Two commands do all the set-up on a fresh clone: `make demo` and `make test`.
# Each (re)creates .venv when it is missing or pyproject.toml has changed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint typecheck unit chaos bench count-api clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/gateway demo

test: $(STAMP) lint typecheck
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

# Every chaos case (about 3 minutes); `make test` runs only the two not marked chaos_full.
chaos: $(STAMP)
	$(BIN)/pytest -q -m chaos tests/chaos

bench: $(STAMP)
	for b in benchmarks/bench_*.py; do $(BIN)/python $$b || exit 1; done

count-api: $(STAMP)
	$(BIN)/python benchmarks/count_api.py

clean:
	rm -rf $(VENV) var .mypy_cache .pytest_cache .ruff_cache .hypothesis
