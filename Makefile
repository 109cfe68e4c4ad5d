# Tandem: `make run` serves the demo, `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run demo test lint bench bench-api schema install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: demo

demo: $(STAMP)
	$(BIN)/tandem demo

test: $(STAMP)
	$(BIN)/pytest -q -n auto

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy server emulators

schema: $(STAMP)
	$(BIN)/python -m server.schema.export

bench: $(STAMP)
	$(BIN)/python -m bench.availability
	$(BIN)/python -m bench.freshness

bench-api: $(STAMP)
	$(BIN)/python -m bench.api_load

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
