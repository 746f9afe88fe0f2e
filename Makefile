# FrameOps: `make run` (install + serve the embedded demo) and `make test` (install + tests).
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8000
# Tests run against the real local PostgreSQL; pytest-django creates test_frameops itself.
TEST_DATABASE_URL ?= postgres://root@127.0.0.1:5432/frameops

.PHONY: help install install-dev run test lint format clean

help:
	@echo "make run   install into $(VENV), migrate the embedded database, serve on 127.0.0.1:$(PORT)"
	@echo "make test  install with the dev extra, run the test suite against PostgreSQL"
	@echo "make lint  ruff check and ruff format --check"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall only when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

run: install
	$(BIN)/python manage.py migrate --no-input
	$(BIN)/python manage.py ensure_admin
	@echo "FrameOps on http://127.0.0.1:$(PORT)/admin/ (health: http://127.0.0.1:$(PORT)/health/)"
	exec $(BIN)/python manage.py runserver 127.0.0.1:$(PORT)

test: install-dev
	DATABASE_URL="$${DATABASE_URL:-$(TEST_DATABASE_URL)}" $(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) var .pytest_cache
