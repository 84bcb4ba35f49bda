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

$(STAMP): shared/pyproject.toml services/*/pyproject.toml devtools/pyproject.toml clients/python/pyproject.toml requirements-dev.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e shared -e services/registry -e services/events -e services/notify -e devtools -e clients/python -r requirements-dev.txt
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

# Everything but the compose stack: unit, integration, end to end (SQLite and PostgreSQL) and,
# last, the fault suite (tests/faults restarts the local RabbitMQ app once). Prints branch
# coverage and fails under its floor (fail_under in pyproject.toml), and the slowest tests.
test: lint
	@bash tests/ensure_tools.sh
	$(BIN)/pytest --cov --cov-report=term --durations=25 $(PYTEST_ARGS)

# Tests marked unit (tests/support/fixtures.py decides): no broker, no database server.
unit: $(STAMP)
	$(BIN)/pytest -m unit -q $(PYTEST_ARGS)

# The fault suite alone (about 6 minutes, plus 1.5 for cases 11-12 and their RabbitMQ cluster, 2.5 for 13-14).
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

# Translations (docs/translations.md): for every service with catalogs (I18N_SERVICES), extract the
# messages from its templates and code (and the shared vocabulary labels), merge them into every
# catalog, check that every catalog compiles. `make i18n-update I18N_SERVICES=events` does one.
I18N_SERVICES ?= $(patsubst services/%/babel.cfg,%,$(wildcard services/*/babel.cfg))
i18n-extract: $(STAMP)
	@for s in $(I18N_SERVICES); do \
	  $(BIN)/pybabel extract -F services/$$s/babel.cfg -k N_ -k _ --no-location --sort-output \
	    --project "TACSO $$s" --copyright-holder TACSO --msgid-bugs-address events@tacso.local \
	    -o services/$$s/tacso_$$s/translations/messages.pot services/$$s/tacso_$$s \
	    shared/tacso_shared/i18n.py || exit 1; \
	done

i18n-update: i18n-extract
	@for s in $(I18N_SERVICES); do \
	  $(BIN)/pybabel update -i services/$$s/tacso_$$s/translations/messages.pot \
	    -d services/$$s/tacso_$$s/translations --no-fuzzy-matching --ignore-obsolete --width 100 \
	    || exit 1; \
	done

i18n-compile: $(STAMP)
	@for s in $(I18N_SERVICES); do \
	  $(BIN)/pybabel compile -d services/$$s/tacso_$$s/translations --statistics || exit 1; \
	done

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
