# Two commands for a newcomer: `make up` runs the whole stack, `make test` runs every check.
# `make unit` is the quick loop: the tests that need no broker, no database server, no process.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help install up demo test unit test-faults test-compose bench lint clean i18n-extract i18n-update i18n-compile

help:
	@echo "make up     - install if needed, migrate and run the whole stack in the foreground"
	@echo "make demo   - against a running stack: register CSOs and media, publish an event"
	@echo "make test   - install if needed, then lint, type-check and run the whole suite"
	@echo "make unit   - the unit tests alone (no RabbitMQ, no PostgreSQL; seconds)"
	@echo "make lint   - ruff check, ruff format --check, mypy, codespell"
	@echo "make test-faults  - the fault suite alone"
	@echo "make test-compose - the docker compose stack, for real"
	@echo "make bench  - throughput and latency benchmarks (docs/performance.md)"

$(STAMP): shared/pyproject.toml services/*/pyproject.toml devtools/pyproject.toml requirements-dev.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e shared -e services/registry -e services/events -e services/notify -e devtools -r requirements-dev.txt
	@touch $(STAMP)

# Also the tools some tests run (promtool, Chromium) when missing: Debian packages, so CI has them.
install: $(STAMP)
	@bash tests/ensure_tools.sh

up: $(STAMP)
	$(BIN)/tacso-stack up

demo: $(STAMP)
	$(BIN)/tacso-stack demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/codespell

# Everything but the compose stack: unit, integration, end to end (SQLite and PostgreSQL) and
# the fault suite (tests/faults restarts the local RabbitMQ app once). Prints branch coverage
# and fails under its floor (fail_under in pyproject.toml).
test: lint
	@bash tests/ensure_tools.sh
	$(BIN)/pytest --cov --cov-report=term $(PYTEST_ARGS)

# Tests marked unit (tests/support/fixtures.py decides): no broker, no database server.
unit: $(STAMP)
	$(BIN)/pytest -m unit -q $(PYTEST_ARGS)

# The fault suite alone (about 6 minutes, plus 1.5 for cases 11-12 and their RabbitMQ cluster).
test-faults: $(STAMP)
	$(BIN)/pytest tests/faults -m faults $(PYTEST_ARGS)

# The docker compose stack for real (Docker engine and stand-in images prepared if needed).
test-compose: $(STAMP)
	bash tests/compose/prepare.sh
	TACSO_COMPOSE_TESTS=1 $(BIN)/pytest tests/compose -p no:cacheprovider $(PYTEST_ARGS)

# Throughput of the invitation fan-out (smtplib limit, Celery baseline, ours) and of the HTTP APIs;
# figures and docs/performance.md. BENCH_N=1000,10000 for a quick run (see bench/run.py).
bench: $(STAMP)
	$(BIN)/pip install --quiet -r bench/requirements.txt
	bench/ensure_tools.sh
	BENCH_N=$(BENCH_N) $(BIN)/python -m bench

# Translations of notify's mail (docs/translations.md): extract the messages from the templates
# and code, merge them into every catalog, check that every catalog compiles.
I18N := services/notify/tacso_notify/translations
i18n-extract: $(STAMP)
	$(BIN)/pybabel extract -F services/notify/babel.cfg -k N_ -k _ --no-location --sort-output \
	  --project "TACSO notify" --copyright-holder TACSO --msgid-bugs-address events@tacso.local \
	  -o $(I18N)/messages.pot services/notify/tacso_notify

i18n-update: i18n-extract
	$(BIN)/pybabel update -i $(I18N)/messages.pot -d $(I18N) --no-fuzzy-matching \
	  --ignore-obsolete --width 100

i18n-compile: $(STAMP)
	$(BIN)/pybabel compile -d $(I18N) --statistics

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
