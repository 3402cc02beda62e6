# The two commands of the Quick start: `make run` and `make test`. Both work on a fresh machine:
# they make the virtual environment, install, start the services, migrate, then run or test.
SHELL := /bin/bash
VENV ?= .venv
BIN := $(VENV)/bin
PYTHON ?= python3

.PHONY: run test venv services services-down migrate lint typecheck pytest bench clean browser

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

services:
	scripts/services up

services-down:
	scripts/services down

migrate: venv services
	$(BIN)/bloghub db upgrade
	$(BIN)/bloghub topics

# API processes (one per core unless WORKERS says), the projectors (in one process per core,
# up to two, unless PROJECTORS says) and the sweeper, side by side.
WORKERS ?= $(shell nproc)
run: venv services migrate
	$(BIN)/bloghub run --workers $(WORKERS) $(if $(PROJECTORS),--projectors $(PROJECTORS))

lint: venv
	$(BIN)/ruff check src tests bench migrations
	$(BIN)/ruff format --check src tests bench migrations

typecheck: venv
	$(BIN)/mypy src tests bench

# The browser test drives Debian's Chromium through Playwright (no browser download).
browser:
	@command -v chromium >/dev/null || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }

# pytest exits 5 when it collects nothing; that is reported, not hidden as a pass. The 20
# slowest tests are listed, so a run that grows shows where.
pytest: venv services browser
	$(BIN)/python -m pytest -q -p no:cacheprovider --durations=20 $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; fi; exit $$rc

test: lint typecheck pytest

# The HTTP benchmark drives Debian's wrk.
bench: venv services migrate
	@command -v wrk >/dev/null || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk; }
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
