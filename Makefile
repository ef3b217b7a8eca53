# Two commands a user needs: `make demo` and `make test`. Both build .venv first.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint venv proto clean bench

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/worldloom demo --out runs/demo

# ruff (lint + import order) on every package; mypy on the files pyproject.toml [tool.mypy] lists (contract/, model/,
# the render protocol's modules)
lint: $(STAMP)
	$(BIN)/ruff check contract model unreal_bridge pipeline training
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest -q tests

proto: $(STAMP)
	$(BIN)/python -m unreal_bridge.protos.generate

bench: $(STAMP)
	@for f in benchmarks/bench_*.py; do echo "== $$f"; $(BIN)/python $$f; done

clean:
	rm -rf $(VENV) runs .pytest_cache
