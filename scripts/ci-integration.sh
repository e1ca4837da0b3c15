#!/usr/bin/env bash
# Integration tests against real servers: start them (scripts/infra.sh up), run
# `cargo test -p integration-tests` with WALLEX_REQUIRE_INFRA=1 (a missing server is a
# failure, not a skip), and always stop them again. Exits with the tests' status.
#
# Extra arguments go to cargo test, e.g. scripts/ci-integration.sh -- --nocapture
set -euo pipefail

ROOT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
INFRA="$ROOT_DIR/scripts/infra.sh"

stop_servers() {
  local status=$?
  "$INFRA" down || echo "ci-integration: scripts/infra.sh down failed" >&2
  exit "$status"
}
trap stop_servers EXIT

cd "$ROOT_DIR"
"$INFRA" up
# shellcheck source=/dev/null # written by scripts/infra.sh up
source "$ROOT_DIR/.infra/env"

export WALLEX_REQUIRE_INFRA=1
# The end-to-end test starts the four binaries as processes of their own.
cargo build --workspace --bins
cargo test -p integration-tests "$@"
