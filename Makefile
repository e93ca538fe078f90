# Attendance Desk. `make help` lists the targets; each installs what it needs first.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

.PHONY: install
install: $(STAMP) ## Create .venv and install the project (editable) with its test tools

.PHONY: lint
lint: $(STAMP) ## ruff check, ruff format --check, mypy on core/
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy core

.PHONY: format
format: $(STAMP) ## Fix what ruff can fix and format the code
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

.PHONY: test
test: lint ## Install, run the linters, then every test (SQLite, and PostgreSQL/MariaDB where reachable)
	$(PY) -m pytest $(PYTEST_ARGS)

.PHONY: clean
clean: ## Remove the virtualenv and caches (keeps data/)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
