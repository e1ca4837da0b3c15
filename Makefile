# Daily tasks. `make help` lists them.
SHELL := /usr/bin/env bash
CARGO ?= cargo

.PHONY: help run test test-it infra-up infra-down bench images k8s-validate fmt lint ci

# Images of `make images`: $(IMAGE_REPO)/<binary>:$(IMAGE_TAG); k8s/overlays/dev runs :dev.
IMAGE_REPO ?= wallex
IMAGE_TAG ?= dev
BINARIES := command-api outbox-relay ledger-consumer projection-consumer

help: ## List the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

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

images: ## Build the four Docker images from deploy/Dockerfile (IMAGE_REPO=wallex IMAGE_TAG=dev)
	@command -v docker >/dev/null 2>&1 || { echo "make images: docker is not installed: it is needed to build the images" >&2; exit 1; }
	@docker info >/dev/null 2>&1 || { echo "make images: no Docker engine answers (docker info failed): start one or set DOCKER_HOST" >&2; exit 1; }
	@set -euo pipefail; for bin in $(BINARIES); do \
	  echo "== $(IMAGE_REPO)/$$bin:$(IMAGE_TAG)"; \
	  DOCKER_BUILDKIT=1 docker build -f deploy/Dockerfile --build-arg BIN=$$bin -t $(IMAGE_REPO)/$$bin:$(IMAGE_TAG) .; \
	done

k8s-validate: ## Render k8s/ (base and overlays) and validate every object offline
	scripts/k8s-validate.sh

fmt: ## Format the code
	$(CARGO) fmt --all

lint: ## Formatting check and clippy with warnings as errors
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

ci: lint test k8s-validate test-it ## What .ci/run checks
