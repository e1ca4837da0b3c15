# Daily tasks. `make help` lists them.
SHELL := /usr/bin/env bash
CARGO ?= cargo

.PHONY: help run test test-it infra-up infra-down bench fmt lint ci

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

run: ## Run the whole system in one process on embedded storage (./data, port 3000)
	$(CARGO) run --release -p command-api

test: ## Unit, property and HTTP end-to-end tests; integration tests skip without servers
	$(CARGO) test --workspace

test-it: ## Integration tests against real PostgreSQL, Redis, Kafka, OpenSearch (started and stopped here)
	scripts/ci-integration.sh

infra-up: ## Start the real servers on 127.0.0.1 (see scripts/infra.sh)
	scripts/infra.sh up

infra-down: ## Stop the servers infra-up started
	scripts/infra.sh down

bench: ## Seed load test against a running server (URL=http://127.0.0.1:3000)
	$(CARGO) run --release -p load-generator -- --url $${URL:-http://127.0.0.1:3000} --wallets 1000 --operations 20000 --workers 20

fmt: ## Format the code
	$(CARGO) fmt --all

lint: ## Formatting check and clippy with warnings as errors
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

ci: lint test test-it ## What .ci/run checks
