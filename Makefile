# flywheel — every target sets up .venv itself when needed (scripts/bootstrap.sh is idempotent).
# The two commands of the README:  make demo  (the whole flywheel)   make test  (the tests)

SHELL := /bin/bash
VENV  := .venv
FW    := $(VENV)/bin/flywheel
PY    := $(VENV)/bin/python
DOCS  ?= docs
Q     ?= How do I start the embedded stack?

.PHONY: help install demo test lint up down status ingest ask log-model serve serve-cli test-request \
        eval gateway bench clean

help:  ## List the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

install:  ## Create/update .venv with everything (idempotent, instant when nothing changed)
	@bash scripts/bootstrap.sh

demo: install  ## The main job: the whole flywheel on embedded defaults
	@$(FW) demo

test: install  ## Lint and run every test (unit + integration on the real embedded stack)
	@$(VENV)/bin/ruff check src tests bench
	@$(VENV)/bin/ruff format --check src tests bench
	@$(PY) -m pytest

lint: install  ## ruff + mypy
	@$(VENV)/bin/ruff check src tests bench && $(VENV)/bin/mypy

up: install  ## Start the embedded stack (MLflow :5000, LLM :8080)
	@$(FW) up

down: install  ## Stop the embedded stack
	@$(FW) down

status: install  ## Show the embedded services
	@$(FW) status

ingest: install  ## Ingest DOCS (default: docs/) into the vector index
	@$(FW) ingest $(DOCS)

ask: install  ## Ask the agent question Q
	@$(FW) ask "$(Q)"

log-model: install  ## Log + register the agent in MLflow (not yet available)
	@$(FW) log-model 2>/dev/null || echo "log-model: not yet available (issue #4)"

serve: install  ## Serve the agent on :5005 (not yet available)
	@$(FW) serve 2>/dev/null || echo "serve: not yet available (issue #4)"

serve-cli: install  ## Serve with `mlflow models serve` (not yet available)
	@echo "serve-cli: not yet available (issue #4)"

test-request: install  ## curl the agent server (not yet available)
	@echo "test-request: not yet available (issue #4)"

eval: install  ## Evaluate the agent on a golden dataset (not yet available)
	@echo "eval: not yet available (issue #5)"

gateway: install  ## Start the LLM gateway on :5010 (not yet available)
	@echo "gateway: not yet available"

bench: install  ## Run every benchmark in bench/ (writes bench/results/*.json)
	@for b in bench/*.py; do echo "==> $$b"; $(PY) $$b || exit 1; done

clean:  ## Stop the stack and delete data/ and reports/ (keeps .venv)
	@[ -x $(FW) ] && $(FW) down || true
	@rm -rf data reports .pytest_cache
