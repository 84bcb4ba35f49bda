# Two commands for a newcomer: `make up` runs the whole stack, `make test` runs every check.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help install up demo test lint typecheck unit clean

help:
	@echo "make up     - install if needed, migrate and run the whole stack in the foreground"
	@echo "make demo   - against a running stack: register CSOs and media, publish an event"
	@echo "make test   - install if needed, then lint, type-check and run the whole suite"
	@echo "make lint   - ruff check, ruff format --check, mypy"

$(STAMP): shared/pyproject.toml services/*/pyproject.toml devtools/pyproject.toml requirements-dev.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e shared -e services/registry -e services/events -e services/notify -e devtools -r requirements-dev.txt
	@touch $(STAMP)

install: $(STAMP)

up: $(STAMP)
	$(BIN)/tacso-stack up

demo: $(STAMP)
	$(BIN)/tacso-stack demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
