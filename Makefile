# flywheel — every target sets up .venv itself when needed (scripts/bootstrap.sh is idempotent).
# The two commands of the README:  make demo  (the whole flywheel)   make test  (the tests)

SHELL := /bin/bash
VENV  := .venv
FW    := $(VENV)/bin/flywheel
PY    := $(VENV)/bin/python
DOCS  ?= docs
Q     ?= How do I start the embedded stack?

.PHONY: help install demo test lint up down status ingest ask log-model prompts serve serve-cli test-request \
        eval simulate monitor review tune gate gateway bench clean

help:  ## List the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

install:  ## Create/update .venv with everything (idempotent, instant when nothing changed)
	@bash scripts/bootstrap.sh

demo: install  ## The main job: the whole flywheel on embedded defaults
	@$(FW) demo

test: install  ## Lint and run every test (unit + integration on the real embedded stack)
	@bash scripts/ensure-chromium.sh
	@bash scripts/ensure-postgres.sh
	@bash scripts/ensure-redis.sh
	@bash scripts/ensure-phoenix.sh
	@$(VENV)/bin/ruff check src tests bench
	@$(VENV)/bin/ruff format --check src tests bench
	@$(VENV)/bin/mypy
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

MODEL ?= docs-qa-agent
ALIAS ?= challenger
AGENT_URL ?= http://127.0.0.1:5005

log-model: install  ## Log + register the agent (alias ALIAS), verify it in a fresh process
	@$(FW) log-model --name $(MODEL) --alias $(ALIAS)

prompts: install  ## Push the built-in system prompts to the prompt registry (alias production)
	@$(FW) prompts push

serve: install  ## Serve models:/MODEL@ALIAS on :5005 (Responses API, streaming, chat page at /)
	@$(FW) serve --model models:/$(MODEL)@$(ALIAS)

serve-cli: install  ## Serve models:/MODEL@ALIAS with `mlflow models serve` on :5006
	@PATH=$(CURDIR)/$(VENV)/bin:$$PATH MLFLOW_TRACKING_URI=$${MLFLOW_TRACKING_URI:-http://127.0.0.1:5000} \
	  $(VENV)/bin/mlflow models serve -m models:/$(MODEL)@$(ALIAS) --env-manager local -h 127.0.0.1 -p 5006

test-request: install  ## POST a question to the agent server with curl and print the JSON
	@curl -sS $(AGENT_URL)/responses -H 'Content-Type: application/json' \
	  $${FLYWHEEL_API_KEY:+-H "Authorization: Bearer $$FLYWHEEL_API_KEY"} \
	  -d '{"input": "$(Q)"}' | $(PY) -m json.tool

DATASET ?= datasets/flywheel-docs-golden.json
TARGET ?= local

eval: install  ## Evaluate TARGET (local | http://… | models:/…) on DATASET; reports in reports/
	@$(FW) eval --dataset $(DATASET) --target $(TARGET)

simulate: install  ## Play 50 scripted users (simulation/load_config.json) against AGENT_URL
	@$(FW) simulate --url $(AGENT_URL) --requests 50

monitor: install  ## Score the production traces that arrived since the last run (online evaluation)
	@$(FW) monitor run --once

review: install  ## The annotation queue on :5020
	@$(FW) monitor review

tune: install  ## Search tuning/tuning.json (2 models × 2 prompts × 2 policies); the best → @challenger
	@$(FW) tune --config tuning/tuning.json

gate: install  ## Gate models:/MODEL@ALIAS against the champion; promote on pass
	@$(FW) gate --candidate models:/$(MODEL)@$(ALIAS) --promote

GATEWAY_CONFIG ?= gateway/gateway_config.yaml

gateway: install  ## The LLM gateway on :5010 (GATEWAY_CONFIG=gateway/gateway_ab_test.yaml for the A/B test)
	@$(FW) gateway start --config $(GATEWAY_CONFIG)

bench: install  ## Run every benchmark in bench/ (writes bench/results/*.json)
	@for b in bench/*.py; do echo "==> $$b"; $(PY) $$b || exit 1; done

clean:  ## Stop the stack and delete data/ and reports/ (keeps .venv)
	@[ -x $(FW) ] && $(FW) down || true
	@rm -rf data reports .pytest_cache
