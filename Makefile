# FrameOps: `make run` (install + serve the embedded demo) and `make test` (install + tests).
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8000
# Tests run against the real local PostgreSQL; pytest-django creates test_frameops itself.
TEST_DATABASE_URL ?= postgres://root@127.0.0.1:5432/frameops

.PHONY: help install install-dev system-deps focus-validator run test lint format clean

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

# The FinOps Foundation's FOCUS validator (focus-validator 2.x declares Python >= 3.12; the
# project runs on 3.11) lives in its own tool environment, run as a program by the tests
# (tests/costing/test_focus_validator.py, docs/costing.md "FOCUS"). Its numpy<2 pin clashes
# with the newest pyarrow, so pyarrow is held below 20 there. FOCUS_PYTHON: a Python 3.12
# or newer (found on PATH or under pyenv).
FOCUS_VENV ?= .venv-focus
FOCUS_VALIDATOR_SPEC ?= focus-validator==2.2.1
FOCUS_PYTHON ?= $(shell for p in python3.13 python3.12 $$HOME/.pyenv/versions/3.1[23]*/bin/python3; do \
  command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null \
  && { command -v $$p; break; }; done)
$(FOCUS_VENV)/.installed: Makefile
	@test -n "$(FOCUS_PYTHON)" || { echo "make: the FOCUS validator needs Python 3.12 or newer (set FOCUS_PYTHON=/path/to/python3.12)"; exit 1; }
	$(FOCUS_PYTHON) -m venv $(FOCUS_VENV)
	$(FOCUS_VENV)/bin/python -m pip install --quiet '$(FOCUS_VALIDATOR_SPEC)' 'numpy>=1.26,<2' 'pyarrow<20'
	touch $@
focus-validator: $(FOCUS_VENV)/.installed

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

test: install-dev system-deps focus-validator
	DATABASE_URL="$${DATABASE_URL:-$(TEST_DATABASE_URL)}" $(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) $(FOCUS_VENV) var .pytest_cache
