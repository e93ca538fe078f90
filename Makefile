# Attendance Desk. `make help` lists the targets; each installs what it needs first.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?= -n auto

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

SECRETS := .streamlit/secrets.toml

.PHONY: run
run: $(STAMP) ## Start the app on http://127.0.0.1:8501 (first run: cookie key, database, demo data)
	@if ! grep -qs '^cookie_key' $(SECRETS); then \
		umask 077; \
		printf 'cookie_key = "%s"\n' "$$($(PY) -c 'import secrets; print(secrets.token_urlsafe(48))')" >> $(SECRETS); \
		echo "wrote a random cookie key to $(SECRETS) (ignored by git)"; \
	fi
	$(VENV)/bin/mentorship init
	$(VENV)/bin/mentorship demo
	@echo
	@echo "Attendance Desk: http://127.0.0.1:8501"
	@echo "Demo sign-ins (demo data only, never for real use):"
	@echo "  mentor / demo-mentor-pass"
	@echo "  admin  / demo-admin-pass"
	@echo
	$(PY) -m streamlit run app/main.py

.PHONY: lint
lint: $(STAMP) ## ruff check, ruff format --check, mypy on core/
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy core

.PHONY: format
format: $(STAMP) ## Fix what ruff can fix and format the code
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

.PHONY: browser
browser: ## Install Debian's Chromium for the browser tests, when missing (needs root; never a browser download)
	@if command -v chromium >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else echo "Chromium is missing and this is not root: the browser tests will be skipped (CI=true fails them)."; fi

.PHONY: test
test: lint browser ## Install, run the linters, then every test (SQLite, PostgreSQL/MariaDB where reachable, browser)
	$(PY) -m pytest $(PYTEST_ARGS)

.PHONY: bench
bench: $(STAMP) ## Benchmark at 1,000,000 bookings against the targets (bench/results.json; exits 1 on a miss)
	$(PY) -m bench.run --size 1000000 --out bench/results.json

.PHONY: bench-quick
bench-quick: $(STAMP) ## The benchmark at 100,000 bookings, fewer runs (under 2 minutes; bench/results-quick.json)
	$(PY) -m bench.run --size 100000 --samples 30 --out bench/results-quick.json

.PHONY: clean
clean: ## Remove the virtualenv and caches (keeps data/)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
