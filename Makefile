# FrameOps: `make run` (install + serve the embedded demo) and `make test` (install + tests).
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8000
# Tests run against the real local PostgreSQL; pytest-django creates test_frameops itself.
TEST_DATABASE_URL ?= postgres://root@127.0.0.1:5432/frameops

.PHONY: help install install-dev system-deps run test lint format clean

help:
	@echo "make run   install into $(VENV), migrate the embedded database, serve on 127.0.0.1:$(PORT)"
	@echo "make test  install with the dev extra, run the test suite against PostgreSQL"
	@echo "make lint  ruff check and ruff format --check"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall only when pyproject.toml changes. torch is pinned and installed on its own
# first; the runner extra then finds it satisfied and pip never looks for a newer (CUDA)
# build. TORCH_SPEC=torch==2.13.0+cu128 (with the matching index) installs a GPU build.
TORCH_SPEC ?= torch==2.13.0
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet '$(TORCH_SPEC)'
	$(BIN)/python -m pip install --quiet -e '.[runner]'
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet '$(TORCH_SPEC)'
	$(BIN)/python -m pip install --quiet -e '.[dev,runner]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

# Real services the tests drive: Debian's prometheus (the DCGM pull test starts its own,
# promtool checks the rules) and chromium (Playwright drives it: never `playwright install`).
SYSTEM_PACKAGES := prometheus chromium
system-deps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do command -v $$p >/dev/null || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != 0 ]; then echo "make: install Debian packages:$$missing (sudo apt-get install$$missing)"; exit 1; fi; \
	  echo "make: installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# First start on an empty database: a labelled simulated studio (SIM_DAYS days, 64 GPUs, one
# known fault per pattern; two weeks, so every "vs the week before" on the overview is
# filled; jobs go through the bulk import path) so the dashboard has something to show, an admin and a manager persona of the simulated studio A (one-time
# passwords printed once); with a fleet present nothing is simulated again.
# `simulate_studio --clear` removes it.
SIM_DAYS ?= 14
run: install
	$(BIN)/python manage.py migrate --no-input
	$(BIN)/python manage.py ensure_admin
	$(BIN)/python manage.py simulate_studio --if-empty --days $(SIM_DAYS) --gpus 64 --detect --persona
	@echo "FrameOps on http://127.0.0.1:$(PORT)/ (sign in as admin or sim-manager; API docs /api/docs/, health /health/)"
	exec $(BIN)/python manage.py runserver 127.0.0.1:$(PORT)

test: install-dev system-deps
	DATABASE_URL="$${DATABASE_URL:-$(TEST_DATABASE_URL)}" $(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) var .pytest_cache
