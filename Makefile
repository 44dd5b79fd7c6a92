# The targets CI and the README call. Each sets up .venv first when it is missing.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
CONFIG ?= configs/demo.yaml
WORKDIR ?= .edgeflow
# pytest-xdist workers (tests sharing costly setup run in one xdist group, tests/conftest.py);
# JOBS=0 runs the suite in one process. Many tests wait on servers and subprocesses, so two
# workers pay off even on two cores.
JOBS ?= 2
FAST_JOBS ?= 2
xdist = $(if $(filter-out 0,$(1)),-n $(1) --dist loadgroup)
PYTEST := $(BIN)/python -m pytest -q $(call xdist,$(JOBS))
PYTEST_FAST := $(BIN)/python -m pytest -q $(call xdist,$(FAST_JOBS))

export PREFECT_SERVER_ANALYTICS_ENABLED := false
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := 1

.PHONY: setup demo test test-fast lint type bench clean

$(BIN)/edgeflow: pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q -U pip
	@# torch first: the exact CPU build; a bare "torch" would pull a multi-GB CUDA build.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -c requirements.lock -e '.[dev]'
	@touch $@

# Migrated, empty Prefect and MLflow databases a fresh workdir starts from (flows/cli/runtime.py),
# and the feature kernels compiled into numba's cache (pipelines/features/isolated.py).
$(VENV)/share/edgeflow/templates.stamp: $(BIN)/edgeflow
	$(BIN)/python -m flows.cli.runtime
	$(BIN)/python -m pipelines.features.isolated --warm
	@touch $@

setup: $(BIN)/edgeflow $(VENV)/share/edgeflow/templates.stamp  ## create .venv and install edgeflow with its dev extras

demo: setup  ## run the pipeline end to end on the embedded synthetic default
	$(BIN)/edgeflow run --config $(CONFIG) --workdir $(WORKDIR)

test: setup  ## lint, type-check and run the whole test suite
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy configs pipelines tasks flows
	$(PYTEST)

test-fast: setup  ## the developer's tier: every test not marked slow (CI runs them all)
	$(PYTEST_FAST) -m "not slow"

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

type: setup
	$(BIN)/mypy configs pipelines tasks flows

bench: setup
	for f in benchmarks/bench_*.py; do $(BIN)/python $$f || exit 1; done
	$(BIN)/python benchmarks/assemble.py

clean:
	rm -rf $(WORKDIR) build *.egg-info
