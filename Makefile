# legion-ci: the targets behind the README's two commands (demo, test) and a few more.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
MODEL  ?= examples/iris

.PHONY: help venv dev demo test lint bench clean

help:  ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(BIN)/legion-ci: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps -e .
	@touch $@

venv: $(BIN)/legion-ci  ## create .venv with the pinned runtime dependencies

$(VENV)/.dev: $(BIN)/legion-ci requirements-dev.txt
	$(BIN)/pip install --quiet -r requirements-dev.txt
	@touch $@

dev: $(VENV)/.dev  ## add the test and lint tools

demo: venv  ## run the whole pipeline on examples/iris, locally (state in $$LEGION_HOME, default ~/.legion)
	$(BIN)/legion-ci run $(MODEL)

test: dev  ## provision system packages and services, then run every test
	bash scripts/test.sh

lint: dev  ## ruff (check and format), mypy (strict for the package, and the tests), ansible-lint
	bash scripts/lint.sh
	$(BIN)/python -m pytest -q -p no:randomly tests/integration/test_ansible_lint.py -k lint

bench: venv  ## benchmarks against peers (results as ratios)
	bash bench/run.sh

clean:  ## remove the virtualenv and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
