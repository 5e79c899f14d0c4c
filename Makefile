# ga4-stitch: the two commands of the README are `make run` (the whole pipeline on the
# emulators) and `make test` (everything CI checks). Both set up .venv on first use.

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup run demo test lint typecheck unit integration e2e scan bench faults clean warehouse

setup: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

## The main job: emulators, topics, both functions, local GA4; Ctrl-C stops everything.
run: setup
	$(BIN)/ga4-stitch run

## A self-contained demonstration: run, publish a simulated stream, summarise, exit.
demo: setup
	$(BIN)/ga4-stitch run --demo --people 40

## Everything CI runs: lint, types, formatting of Terraform, the security scan, all tests.
test: setup lint typecheck scan
	$(BIN)/pytest -q

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	terraform fmt -check -recursive terraform

typecheck: setup
	$(BIN)/mypy

scan:
	scripts/scan-terraform.sh

unit: setup
	$(BIN)/pytest -q tests/unit

integration: setup
	$(BIN)/pytest -q -m integration

e2e: setup
	$(BIN)/pytest -q -m e2e

## Cost, speed and accuracy against the baseline; writes benchmarks/results/.
bench: setup
	$(BIN)/python -m benchmarks.run

## The fault suite: each fault an operator meets, on a fresh local pipeline; writes
## benchmarks/results/faults.json (add ARGS=--long for the 5-minute GA4 outage).
faults: setup
	$(BIN)/python -m benchmarks.fault_bench $(ARGS)

## The warehouse models (dbt, DuckDB) over a simulated 100-person stream; docs/warehouse.md.
## dbt gets its own environment, warehouse/.venv, on first use.
warehouse: setup
	mkdir -p .ga4-stitch
	$(BIN)/ga4-stitch simulate --people 100 --seed 1 --quiet > .ga4-stitch/warehouse-events.ndjson
	$(BIN)/ga4-stitch warehouse .ga4-stitch/warehouse-events.ndjson

clean:
	rm -rf $(VENV) .venv-scan .pytest_cache .mypy_cache .ruff_cache .hypothesis
