#!/usr/bin/env bash
# The OpenAPI document as the contract: runs a pinned schemathesis against the embedded default and fails on
# any failure of the four checks below. Installs schemathesis with pip into a venv under .infra/ (once),
# starts command-api (the debug binary, built here if missing) on a free port with a throwaway data folder,
# stops it whatever happened.
#
#   scripts/schemathesis.sh                       # the CI run
#   SCHEMATHESIS_SEED=7 scripts/schemathesis.sh   # another seed (the default one replays)
#
# Budget: SCHEMATHESIS_MAX_EXAMPLES test cases per operation and phase, and the whole run is killed (and
# fails) after SCHEMATHESIS_TIMEOUT_SECONDS.
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
SCHEMATHESIS_CHECKS=not_a_server_error,negative_data_rejection,response_schema_conformance,status_code_conformance
SCHEMATHESIS_MAX_EXAMPLES=${SCHEMATHESIS_MAX_EXAMPLES:-60}
SCHEMATHESIS_SEED=${SCHEMATHESIS_SEED:-20261130}
SCHEMATHESIS_TIMEOUT_SECONDS=${SCHEMATHESIS_TIMEOUT_SECONDS:-420}
SERVER_START_WAIT_SECONDS=60
VENV=.infra/schemathesis-venv

if [[ "$("$VENV/bin/schemathesis" --version 2>/dev/null || true)" != *"$SCHEMATHESIS_VERSION"* ]]; then
    echo "installing schemathesis $SCHEMATHESIS_VERSION into $VENV"
    mkdir -p .infra
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

cargo build --quiet -p command-api
binary="${CARGO_TARGET_DIR:-target}/debug/command-api"

data_dir=$(mktemp -d)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
log="$data_dir/command-api.log"
server_pid=""
cleanup() {
    if [[ -n "$server_pid" ]]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$data_dir"
}
trap cleanup EXIT

HOST=127.0.0.1 PORT=$port WALLEX_DATA_DIR="$data_dir/data" RUST_LOG=warn "$binary" >"$log" 2>&1 &
server_pid=$!
base="http://127.0.0.1:$port"
for _ in $(seq "$SERVER_START_WAIT_SECONDS"); do
    curl -fsS "$base/health" >/dev/null 2>&1 && break
    kill -0 "$server_pid" 2>/dev/null || { echo "command-api exited:"; tail -n 50 "$log"; exit 1; }
    sleep 1
done
curl -fsS "$base/health" >/dev/null || { echo "command-api did not answer on $base"; tail -n 50 "$log"; exit 1; }
# A few wallets, so that operations on existing ids are exercised too.
for id in wallet-123 wallet-789; do
    curl -fsS -X POST "$base/wallets" -H 'Content-Type: application/json' \
        -d "{\"walletId\":\"$id\",\"ownerId\":\"user-456\",\"initialBalance\":1000}" >/dev/null
done

echo "schemathesis $SCHEMATHESIS_VERSION against $base (seed $SCHEMATHESIS_SEED, $SCHEMATHESIS_MAX_EXAMPLES examples, ${SCHEMATHESIS_TIMEOUT_SECONDS}s at most)"
status=0
timeout --signal=INT "$SCHEMATHESIS_TIMEOUT_SECONDS" \
    "$VENV/bin/schemathesis" run "$base/openapi.json" \
    --checks "$SCHEMATHESIS_CHECKS" \
    --max-examples "$SCHEMATHESIS_MAX_EXAMPLES" \
    --seed "$SCHEMATHESIS_SEED" \
    --workers 1 \
    --request-timeout 10 \
    --generation-database none \
    --no-color \
    || status=$?
if [[ $status -eq 124 ]]; then
    echo "schemathesis did not finish within ${SCHEMATHESIS_TIMEOUT_SECONDS}s"
fi
if [[ $status -ne 0 ]]; then
    echo "--- end of the command-api log"
    tail -n 40 "$log"
fi
exit "$status"
